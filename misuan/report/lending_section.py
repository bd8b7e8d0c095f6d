"""The lending section of the report: credit decisions from the joint model's PDs, and the product's compliance.

From ``summary.lending`` (:mod:`misuan.report.lending_schema`) and the PDs in ``summary.evaluation``:
the decisions by PD band (customers, approvals, observed defaults, limits and rates; a bar chart of the
mean limit), what caused the declines, the product's caps check with rule ids and sources, the
borrower disclosure of one approved customer's loan and the adverse-action notice of one declined
customer (both written by :mod:`misuan.lending.disclosure`, which escapes their text and shows the
annualised rate first and largest), and the marketing-copy findings with their spans highlighted.
Only a summary with ``lending`` has this section; :data:`LENDING_CSS` is added to the page with it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

import numpy as np

from misuan.lending.disclosure import adverse_action_notice, loan_disclosure
from misuan.lending.policy import REASONS, Reason
from misuan.lending.schedule import equal_instalment
from misuan.report import svg
from misuan.report.markup import esc, explain, html_table, percent, section, thousands
from misuan.report.schema import CapResult, CopyCheck, CopyFinding, Lending, Summary

__all__ = ["LENDING_CSS", "PD_EDGES", "PdBand", "highlight", "lending_section", "pd_bands"]

# PD bands of the decisions table; the policy's max_pd is added as an edge, so no band straddles it
PD_EDGES = (0.0, 0.02, 0.05, 0.10, 0.15, 0.25, 0.50, 1.0)
RATE_FIGURES = {"annualised_rate", "annualised_rate_compound", "mapr", "partner_share"}
BAR_APPROVED = "#1f5fa8"
BAR_NONE = "#b8bfc8"

LENDING_CSS = """
mark.finding{background:#fbdcdc;border-bottom:2px solid #b3261e;padding:0 1px}
mark.finding.warning{background:#fdf0d5;border-bottom-color:#a15c00}
.copy{background:#f6f7f9;border:1px solid var(--line);border-radius:6px;padding:8px 12px;font-size:15px;line-height:1.9}
.copy sup{color:#b3261e;font-weight:600;font-size:10px}
.misuan-loan-disclosure,.misuan-adverse-action{border:1px solid var(--line);border-radius:8px;padding:2px 14px 8px;background:#fcfcfd}
.misuan-loan-disclosure p,.misuan-adverse-action p{margin:4px 0}
.misuan-loan-disclosure caption{text-align:left;font-weight:600;margin:8px 0 2px}
.misuan-loan-disclosure table{font-size:12.5px}.misuan-loan-disclosure td,.misuan-loan-disclosure th{white-space:nowrap;padding:3px 5px}
table.caps td,table.copy-findings td{vertical-align:top}table.caps small{color:var(--muted)}
#lending code{word-break:normal}#lending .nw{white-space:nowrap}
"""


@dataclasses.dataclass(frozen=True)
class PdBand:
    """The customers whose PD is in ``(low, high]`` (the first band includes 0) and what the policy gave them."""

    low: float
    high: float
    customers: int
    approved: int
    defaulted: int  # observed on the hold-out
    limits: tuple[float, ...]  # of the approved
    rates: tuple[float, ...]

    @property
    def label(self) -> str:
        return f"{self.low * 100:g}–{self.high * 100:g} %"


def pd_bands(pds: Sequence[float], y_true: Sequence[int], lending: Lending) -> list[PdBand]:
    """The decisions grouped by PD band (bands without customers left out)."""
    d = lending.decisions
    max_pd = d.policy.get("max_pd")
    extra = {float(max_pd)} if isinstance(max_pd, (int, float)) and 0 < max_pd < 1 else set()
    edges = sorted(set(PD_EDGES) | extra)
    p = np.asarray(pds, dtype=float)
    band = np.clip(np.searchsorted(edges, p, side="left") - 1, 0, len(edges) - 2)
    out = []
    for k in range(len(edges) - 1):
        members = np.flatnonzero(band == k).tolist()
        if not members:
            continue
        ok = [i for i in members if d.approved[i]]
        out.append(PdBand(edges[k], edges[k + 1], len(members), len(ok), sum(y_true[i] for i in members),
                          tuple(d.limit[i] for i in ok), tuple(d.rate[i] for i in ok)))
    return out


def _rate_range(rates: Sequence[float]) -> str:
    if not rates:
        return "–"
    lo, hi, mean = min(rates), max(rates), sum(rates) / len(rates)
    return f"{percent(lo, 2)} – {percent(hi, 2)} (mean {percent(mean, 2)})" if hi > lo else percent(lo, 2)


def _decisions_html(summary: Summary, lending: Lending, currency: str) -> str:
    d = lending.decisions
    n, ok = len(d.approved), sum(d.approved)
    limits = [x for x, a in zip(d.limit, d.approved, strict=True) if a]
    rates = [x for x, a in zip(d.rate, d.approved, strict=True) if a]
    facts = [
        ("Customers decided", f"{thousands(n)} hold-out customers, PD from the model “{esc(d.model)}”"),
        ("Approved", f"{thousands(ok)} ({esc(percent(ok / n))})" if n else "0"),
        ("Mean limit", esc(f"{sum(limits) / len(limits):,.0f} {currency}") if limits else "–"),
        ("Rates offered", esc(_rate_range(rates)) + " nominal a year"),
        ("Caps applied", esc(f"rate {percent(d.rate_cap, 2)}, amount {d.amount_cap:,.0f} {currency}")
         + (" (" + ", ".join(f"<code>{esc(r)}</code>" for r in d.cap_rules) + ")" if d.cap_rules else "")),
    ]
    html = '<dl class="facts">' + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>"
    if lending.assumptions:
        html += "<p><strong>Assumptions:</strong></p><ul>" + "".join(f"<li>{esc(a)}</li>" for a in lending.assumptions) + "</ul>"
    bands = pd_bands(summary.evaluation.scores[d.model], summary.evaluation.y_true, lending)
    rows = [
        [esc(b.label), thousands(b.customers), thousands(b.approved), esc(percent(b.approved / b.customers)),
         esc(percent(b.defaulted / b.customers)),
         esc(f"{sum(b.limits) / len(b.limits):,.0f}") if b.limits else "–", esc(_rate_range(b.rates))]
        for b in bands
    ]
    bars = [svg.Bar(label=f"PD {b.label}", value=sum(b.limits) / len(b.limits) if b.limits else 0.0,
                    color=BAR_APPROVED if b.limits else BAR_NONE,
                    note=f"{b.approved:,} of {b.customers:,}") for b in bands]
    chart = svg.hbar_chart(bars, title="Mean credit limit by PD band", fmt=",.0f",
                           value_label=f"mean limit of the approved ({currency}) · approved of the customers in the band")
    html += "<h3>Decisions by PD band</h3>" + html_table(
        ["PD band", "Customers", "Approved", "Approval rate", "Defaulted (observed)", f"Mean limit ({currency})",
         "Rate offered"], rows, css="bands", numeric=(1, 2, 3, 4, 5)) + f"<figure>{chart}</figure>"
    html += _decline_reasons_html(lending)
    params = [[f"<code>{esc(k)}</code>", esc("–" if v is None else v)] for k, v in d.policy.items()]
    if params:
        html += "<details><summary>Policy parameters</summary>" + html_table(["Parameter", "Value"], params, css="params") + "</details>"
    return html


def _decline_reasons_html(lending: Lending) -> str:
    causes = lending.decisions.decline_reasons
    if not causes:
        return ""
    rows = [[f"<code>{esc(code)}</code>", esc(REASONS[code].en), esc(REASONS[code].zh), thousands(count)]
            for code, count in sorted(causes.items(), key=lambda kv: -kv[1])]
    return ("<h3>What caused the declines</h3>"
            + html_table(["Reason", "In English", "中文", "Declines"], rows, numeric=(3,))
            + '<p class="note">A decline may have several causes. The capacity bound that sizes every limit '
              "(debt-to-income, income multiple) is counted only where it made the limit fall below the minimum.</p>")


def _figure_text(c: CapResult) -> str:
    if c.figure_name in RATE_FIGURES:
        return percent(c.figure, 2)
    return f"{c.figure:,.0f}" if c.figure_name == "term_days" else f"{c.figure:,.2f}"


def _status(status: str) -> str:
    ok = status.endswith("pass")
    text = status.replace("-", ": ")
    return f'<span class="{"ok" if ok else "bad-text"}">{"✔" if ok else "✘"} {esc(text)}</span>'


def _product_html(lending: Lending) -> str:
    p = lending.product
    facts = [
        ("Product", esc(f"{p.name}: {p.term_months} monthly equal instalments (等额本息), upfront fee "
                        f"{p.upfront_fee_rate * 100:g} % of the principal deducted from the proceeds, {p.currency}")),
        ("Caps", esc(f"rule set {p.jurisdiction}, lender type {p.lender}, contract date {p.contract_date}")),
        ("Loan checked", esc(f"{p.basis}: {p.principal:,.2f} {p.currency} at {percent(p.annual_rate, 2)} nominal")
         if p.basis else esc(f"{p.principal:,.2f} {p.currency} at {percent(p.annual_rate, 2)} nominal")),
        ("PBoC annualised rate", f"<strong>{esc(percent(p.annualised_simple, 2))} simple</strong> (12 × the monthly "
         f"IRR), <strong>{esc(percent(p.annualised_compound, 2))} compound</strong>, fees included"),
    ]
    ok = all(c.status != "fail" for c in p.caps)
    rows = [
        [f"<code>{esc(c.rule_id)}</code>", esc(c.title), f"<code>{esc(c.figure_name)}</code>", esc(_figure_text(c)),
         f"{'≤' if c.check == 'max' else '≥'} {esc(c.limit_text)}", f'<span class="nw">{_status(c.status)}</span>',
         f"<small>{esc(c.source)}</small>", esc(c.effective)]
        for c in p.caps
    ]
    html = ('<dl class="facts">' + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>"
            + f"<p><strong>Caps check:</strong> {_status('pass' if ok else 'fail')}</p>"
            + html_table(["Rule", "Title", "Figure", "Value", "Limit", "Result", "Source", "In force from"], rows,
                         css="caps", numeric=(3,)))
    if p.not_checked:
        html += "<p>Not checked: " + "; ".join(f"<code>{esc(n.rule_id)}</code> ({esc(n.reason)})" for n in p.not_checked) + "</p>"
    return "<h3>The product against the caps</h3>" + html


def _disclosure_html(summary: Summary, lending: Lending) -> str:
    loan = lending.example_loan
    if loan is None:
        return "<h3>Borrower disclosure</h3><p>No customer was approved: there is no loan to disclose.</p>"
    schedule = equal_instalment(loan.principal, loan.annual_rate, loan.term_months,
                                start=dt.date.fromisoformat(loan.start), upfront_fee=loan.upfront_fee)
    pd = summary.evaluation.scores[lending.decisions.model][loan.applicant]
    zh = loan_disclosure(schedule, lang="zh", currency="元" if loan.currency == "CNY" else loan.currency)
    en = loan_disclosure(schedule, lang="en", currency=loan.currency)
    return (
        "<h3>Borrower disclosure (one approved customer)</h3>"
        + f"<p>Hold-out customer #{loan.applicant} (PD {esc(percent(pd, 2))}) borrows the whole limit, "
        f"{esc(f'{loan.principal:,.2f} {loan.currency}')} at {esc(percent(loan.annual_rate, 2))} nominal. The annualised "
        "rate comes first and largest, ahead of any monthly rate (PBoC Announcement [2021] No. 3).</p>"
        + f'<div class="grid2"><div>{zh.html}</div><div>{en.html}</div></div>'
    )


def _notice_html(summary: Summary, lending: Lending) -> str:
    notice = lending.notice
    if notice is None:
        return "<h3>Adverse-action notice</h3><p>No customer was declined.</p>"
    pd = summary.evaluation.scores[lending.decisions.model][notice.applicant]
    causes = "; ".join(f"{esc(REASONS[c].en)} (<code>{esc(c)}</code>)" for c in notice.policy_reasons)
    html = (f"<h3>Adverse-action notice (one declined customer)</h3><p>Hold-out customer #{notice.applicant} "
            f"(PD {esc(percent(pd, 2))}). The policy declined: {causes or 'see the reasons below'}.</p>")
    n_declined = len(lending.decisions.approved) - sum(lending.decisions.approved)
    if notice.explained is not None:
        html += (f"<p>Reasons are available for {thousands(notice.explained)} of the {thousands(n_declined)} declined "
                 f"customers ({esc(percent(notice.explained / max(n_declined, 1)))})"
                 + ("; this one has the median PD among them.</p>" if notice.reasons else ".</p>"))
    if not notice.reasons:
        return html + (f"<p><strong>Reasons unavailable:</strong> {esc(notice.reasons_from)} No notice is shown: "
                       "a notice must state the specific reasons (12 CFR 1002.9(b)(2)).</p>")
    reasons = [Reason(r.code, r.en, r.zh) for r in notice.reasons]
    when = dt.date.fromisoformat(notice.decided_on) if notice.decided_on else None
    en = adverse_action_notice(reasons, lang="en", lender=notice.lender or None, decided_on=when)
    zh = adverse_action_notice(reasons, lang="zh", lender=notice.lender or None, decided_on=when)
    return (html + f"<p><strong>Where the reasons come from:</strong> {esc(notice.reasons_from)}</p>"
            + f'<div class="grid2"><div>{zh.html}</div><div>{en.html}</div></div>')


def _whole_text(text: str, f: CopyFinding) -> bool:
    """A finding about the whole text (a missing risk warning): listed, not highlighted."""
    return bool(text.strip()) and text[f.start:f.end] == text.strip()


def highlight(text: str, findings: Sequence[CopyFinding]) -> str:
    """``text`` escaped, each finding's span in a ``<mark>`` (overlaps split into pieces), numbered after it."""
    spans = [(n, f) for n, f in enumerate(findings, 1) if not _whole_text(text, f) and f.end > f.start]
    cuts = sorted({0, len(text), *(f.start for _, f in spans), *(f.end for _, f in spans)})
    out = []
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        over = [(n, f) for n, f in spans if f.start <= a and b <= f.end]
        piece = esc(text[a:b])
        if over:
            severity = "error" if any(f.severity == "error" for _, f in over) else "warning"
            title = "; ".join(f"[{n}] {f.rule_id}" for n, f in over)
            piece = f'<mark class="finding {severity}" title="{esc(title)}">{piece}</mark>'
        out.append(piece + "".join(f"<sup>{n}</sup>" for n, f in spans if f.end == b))
    return "".join(out)


def _copy_html(checks: Sequence[CopyCheck]) -> str:
    if not checks:
        return ""
    html = "<h3>Marketing copy of the product</h3>"
    for c in checks:
        errors = sum(f.severity == "error" for f in c.findings)
        verdict = (f'<span class="bad-text">{len(c.findings)} finding(s), {errors} error(s)</span>' if c.findings
                   else '<span class="ok">no findings</span>')
        html += f"<h4>{esc(c.label)}: {verdict}</h4><p class=\"copy\">{highlight(c.text, c.findings)}</p>"
        if c.terms:
            html += f'<p class="note">Checked against the product terms: {esc(c.terms)}.</p>'
        rows = [
            [str(n), f"<code>{esc(f.rule_id)}</code><br><small>{esc(f.title)}</small>", esc(f.severity),
             "whole text" if _whole_text(c.text, f) else f'<span class="nw">{esc(f"[{f.start}, {f.end})")}</span>',
             esc(f.text if len(f.text) <= 40 else f.text[:39] + "…"),
             esc(f.detail) + (f"<br><small>{esc(f.explanation)}</small>" if f.explanation else "")
             + (f"<br><small>Sources: {esc('; '.join(f.sources))}</small>" if f.sources else "")]
            for n, f in enumerate(c.findings, 1)
        ]
        if rows:
            html += html_table(["#", "Rule", "Severity", "Span", "Text", "What was found, and why"], rows, css="copy-findings")
    return html


def lending_section(summary: Summary) -> str:
    """The section, or "" for a summary without ``lending``."""
    lending = summary.lending
    if lending is None:
        return ""
    currency = lending.product.currency
    html = (
        _decisions_html(summary, lending, currency)
        + _product_html(lending)
        + _disclosure_html(summary, lending)
        + _notice_html(summary, lending)
        + _copy_html(lending.copy_checks)
        + explain(
            "Each hold-out customer's PD from the joint model went through the limit and pricing policy: "
            "a risk-based price and a limit within the rate and amount caps, or a decline. The product is "
            "checked against the caps at the most it charges any approved customer, with its fee counted, "
            "because the caps limit the annualised rate, not the nominal one.",
            "The caps are dated rule files with their sources (misuan/lending/rules); the annualised rates are "
            "PBoC Announcement [2021] No. 3 IRRs of the schedules; the disclosure and the notice are generated "
            "by misuan.lending.disclosure from the figures above. Copy findings are the checker's rules with "
            "the exact character spans. See docs/lending.md for the formulas and what is not covered.",
        )
    )
    return section("lending", "10. Credit decisions and lending compliance", html)
