"""What a borrower is shown: the cost disclosure of a loan and the adverse-action notice of a decline.

:func:`loan_disclosure` writes, in Chinese or English, plain text and an HTML fragment with the
annualised rate first and largest (PBoC Announcement [2021] No. 3: the annualised rate must be shown
more prominently than any daily or monthly rate), whether it is the compound (IRR) or the simple form
(the simple one must be labelled), both forms, the total cost (interest and every fee) over the
amount actually received, and the repayment table. A daily or monthly rate, when shown, comes after
the annualised rate in smaller, normal-weight type.

:func:`adverse_action_notice` lists the specific principal reasons of a decline, at most four (US
Regulation B, 12 CFR 1002.9(b)(2) and its official comment 9(b)(2)-1: more than four is not likely to
be helpful), from reason codes given most important first (the policy's, or a scorecard's).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
from collections.abc import Sequence
from typing import Literal

from misuan.errors import ConfigError
from misuan.lending.errors import LoanError
from misuan.lending.policy import Reason
from misuan.lending.rates import PbocRate, pboc_rate
from misuan.lending.schedule import Row, Schedule

__all__ = ["MAX_REASONS", "Disclosure", "Notice", "adverse_action_notice", "loan_disclosure"]

Lang = Literal["zh", "en"]
MAX_REASONS = 4
_HEADLINE_STYLE = "font-size:1.6em;font-weight:700"
_SECOND_STYLE = "font-size:1.25em;font-weight:700"
_PERIOD_STYLE = "font-size:1em;font-weight:400"

_COLS = {
    "zh": ("期数", "还款日", "应还金额", "本金", "利息", "费用", "剩余本金"),
    "en": ("No.", "Due date", "Payment", "Principal", "Interest", "Fees", "Balance"),
}
_TEXT: dict[str, dict[str, str]] = {
    "zh": {
        "title": "借款费用说明", "compound": "年化利率（复利，IRR）", "simple": "年化利率（单利）",
        "simple_how": "{period}利率 × {k}", "compound_how": "(1 + {period}利率)^{k} − 1",
        "basis": "年化利率已计入利息和全部费用，按实际占用的本金计算（中国人民银行公告〔2021〕第3号）。",
        "principal": "借款本金", "received": "实际到账", "interest": "利息合计", "fees": "费用合计",
        "cost": "借款总成本（利息和费用）", "repaid": "还款总额", "period_rate": "{period}{kind}",
        "rate_kind": "利率", "fee_kind": "费率", "period_note": "仅供参考，以年化利率为准",
        "table": "还款计划", "month": "月", "week": "周", "day": "日", "semimonth": "半月", "year": "年",
        "period": "每期",
    },
    "en": {
        "title": "Cost of this loan", "compound": "Annualised rate (compound, IRR)", "simple": "Annualised rate (simple)",
        "simple_how": "{period} rate x {k}", "compound_how": "(1 + {period} rate)^{k} - 1",
        "basis": "The annualised rate includes interest and every fee, on the principal actually outstanding "
                 "(PBoC Announcement [2021] No. 3).",
        "principal": "Principal", "received": "Amount you receive", "interest": "Total interest", "fees": "Total fees",
        "cost": "Total cost (interest and fees)", "repaid": "Total to repay", "period_rate": "{period} {kind}",
        "rate_kind": "rate", "fee_kind": "fee rate", "period_note": "for reference only; the annualised rate applies",
        "table": "Repayment schedule", "month": "Monthly", "week": "Weekly", "day": "Daily",
        "semimonth": "Semimonthly", "year": "Yearly", "period": "Per-period",
    },
}


@dataclasses.dataclass(frozen=True)
class Disclosure:
    lang: str
    text: str
    html: str
    headline_rate: float
    headline_basis: str


def _lang(lang: str) -> Lang:
    if lang not in _TEXT:
        raise ConfigError(f"language {lang!r}: choose zh or en")
    return lang  # type: ignore[return-value]


def _money(x: float | None, currency: str) -> str:
    return "-" if x is None else f"{x:,.2f} {currency}".strip()


def _pct(x: float) -> str:
    return f"{x * 100:.2f}%"


def _period_rate(schedule: Schedule, rate: PbocRate) -> tuple[float, str]:
    """The rate per period a product quotes (nominal, or a fee plan's fee rate), else the IRR per period."""
    if schedule.fee_rate is not None:
        return schedule.fee_rate, "fee_kind"
    if schedule.annual_rate is not None:
        return schedule.annual_rate / schedule.unit.per_year, "rate_kind"
    return rate.period_rate, "rate_kind"


def _row_cells(r: Row) -> tuple[str, ...]:
    return (str(r.number), r.date.isoformat(), _money(r.payment, ""), _money(r.principal, ""),
            _money(r.interest, ""), _money(r.fee, ""), _money(r.balance, ""))


def _lines(schedule: Schedule, rate: PbocRate, t: dict[str, str], headline: str, currency: str,
           show_period_rate: bool) -> list[tuple[str, str, str]]:
    """(style, label, value) for each line of the disclosure, the headline first."""
    period = t[schedule.unit.kind] if schedule.unit.count == 1 else t["period"]
    k = f"{rate.periods_per_year:g}"
    how_period = period if schedule.unit.kind == "day" or t is _TEXT["zh"] else period.lower()
    open_, close = ("（", "）") if t is _TEXT["zh"] else (" (", ")")
    split_known = all(r.interest is not None for r in schedule.rows)
    both = {"compound": (rate.compound, str(t["compound_how"])), "simple": (rate.simple, str(t["simple_how"]))}
    other = "simple" if headline == "compound" else "compound"
    lines = [
        (_HEADLINE_STYLE, t[headline], _pct(both[headline][0])),
        (_SECOND_STYLE, t[other], f"{_pct(both[other][0])}{open_}{both[other][1].format(period=how_period, k=k)}{close}"),
        ("", "", t["basis"]),
        ("", t["principal"], _money(schedule.principal, currency)),
        ("", t["received"], _money(schedule.amount_advanced, currency)),
        ("", t["interest"], _money(schedule.total_interest if split_known else None, currency)),
        ("", t["fees"], _money(schedule.total_fees, currency)),
        ("", t["cost"], _money(schedule.total_cost, currency)),
        ("", t["repaid"], _money(schedule.total_repaid, currency)),
    ]
    if show_period_rate:
        value, kind = _period_rate(schedule, rate)
        label = t["period_rate"].format(period=period, kind=t[kind])
        lines.append((_PERIOD_STYLE, label, f"{_pct(value)}{open_}{t['period_note']}{close}"))
    return lines


def loan_disclosure(schedule: Schedule, *, lang: str = "zh", headline: str = "compound", currency: str | None = None,
                    show_period_rate: bool = True, days_per_year: int = 365) -> Disclosure:
    """The cost disclosure of ``schedule``: text and an HTML fragment, annualised rate first and largest.

    ``headline`` is the form shown first and largest, ``compound`` (IRR, the higher) or ``simple``; the
    other form follows, labelled. ``currency`` defaults to 元 in Chinese and CNY in English.
    """
    t = _TEXT[_lang(lang)]
    if headline not in ("compound", "simple"):
        raise ConfigError(f"headline {headline!r}: choose compound or simple")
    rate = pboc_rate(schedule, days_per_year=days_per_year)
    cur = currency if currency is not None else ("元" if lang == "zh" else "CNY")
    lines = _lines(schedule, rate, t, headline, cur, show_period_rate)
    cols = _COLS[lang]
    rows = [_row_cells(r) for r in schedule.rows]
    sep = "：" if lang == "zh" else ": "
    text = [t["title"]] + [f"{label}{sep}{value}" if label else value for _, label, value in lines]
    text += ["", t["table"], " | ".join(cols)] + [" | ".join(r) for r in rows]
    html_lines = [f'<section class="misuan-loan-disclosure" lang="{lang}">', f"<h3>{html.escape(t['title'])}</h3>"]
    for style, label, value in lines:
        body = f"{html.escape(label)}{html.escape(sep)}{html.escape(value)}" if label else html.escape(value)
        attr = f' style="{style}"' if style else ""
        html_lines.append(f"<p{attr}>{body}</p>")
    html_lines.append(f"<table><caption>{html.escape(t['table'])}</caption>")
    html_lines.append("<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in cols) + "</tr>")
    html_lines += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows]
    html_lines += ["</table>", "</section>"]
    shown = rate.compound if headline == "compound" else rate.simple
    return Disclosure(lang, "\n".join(text) + "\n", "\n".join(html_lines) + "\n", shown, headline)


# --- adverse action ---------------------------------------------------------------------------------
_NOTICE = {
    "en": {
        "title": "Notice of action taken", "intro": "We are unable to approve your application for credit{date}.",
        "reasons": "The principal reasons for our decision:",
        "rights": "You may ask us for a more detailed explanation of this decision. The federal Equal Credit "
                  "Opportunity Act prohibits creditors from discriminating against credit applicants on the basis "
                  "of race, color, religion, national origin, sex, marital status or age (provided the applicant "
                  "has the capacity to contract), because all or part of the applicant's income derives from any "
                  "public assistance program, or because the applicant has in good faith exercised any right under "
                  "the Consumer Credit Protection Act.",
        "lender": "Creditor: {lender}",
    },
    "zh": {
        "title": "授信结果通知", "intro": "很抱歉，您的授信申请{date}未获批准。",
        "reasons": "主要原因：",
        "rights": "您有权要求我们就本决定作出说明，并可拒绝仅通过自动化决策的方式作出决定（《个人信息保护法》第二十四条）。",
        "lender": "授信机构：{lender}",
    },
}


@dataclasses.dataclass(frozen=True)
class Notice:
    lang: str
    reasons: tuple[Reason, ...]
    text: str
    html: str


def adverse_action_notice(reasons: Sequence[Reason], *, lang: str = "en", lender: str | None = None,
                          decided_on: dt.date | None = None, max_reasons: int = MAX_REASONS) -> Notice:
    """A decline notice naming the first ``max_reasons`` (at most 4) distinct reasons, most important first."""
    t = _NOTICE[_lang(lang)]
    if not 1 <= max_reasons <= MAX_REASONS:
        raise ConfigError(f"max_reasons must be from 1 to {MAX_REASONS} (12 CFR 1002.9(b)(2), comment 9(b)(2)-1)")
    first: dict[str, Reason] = {}
    for r in reasons:
        first.setdefault(r.code, r)
    unique = list(first.values())
    if not unique:
        raise LoanError("an adverse-action notice must state the specific reasons (12 CFR 1002.9(b)(2)): give reason codes")
    shown = tuple(unique[:max_reasons])
    when = "" if decided_on is None else (f" (decided on {decided_on})" if lang == "en" else f"（{decided_on}）")
    texts = [(r.zh if lang == "zh" else r.en) for r in shown]
    lines = [t["title"], t["intro"].format(date=when), t["reasons"]]
    lines += [f"{k}. {x} [{r.code}]" for k, (x, r) in enumerate(zip(texts, shown, strict=True), 1)]
    lines.append(t["rights"])
    if lender:
        lines.append(t["lender"].format(lender=lender))
    items = "".join(f"<li>{html.escape(x)} <code>{html.escape(r.code)}</code></li>" for x, r in zip(texts, shown, strict=True))
    body = [f'<section class="misuan-adverse-action" lang="{lang}">', f"<h3>{html.escape(t['title'])}</h3>",
            f"<p>{html.escape(lines[1])}</p>", f"<p>{html.escape(t['reasons'])}</p>", f"<ol>{items}</ol>",
            f"<p>{html.escape(t['rights'])}</p>"]
    if lender:
        body.append(f"<p>{html.escape(lines[-1])}</p>")
    body.append("</section>")
    return Notice(lang, shown, "\n".join(lines) + "\n", "\n".join(body) + "\n")
