"""Borrower disclosures (annualised rate first and largest, both forms, total cost) and decline notices."""

from __future__ import annotations

import datetime as dt
import re
from html.parser import HTMLParser

import pytest

from misuan.errors import ConfigError, DataError
from misuan.lending.disclosure import adverse_action_notice, loan_disclosure
from misuan.lending.policy import REASONS, Applicant, decide
from misuan.lending.schedule import equal_instalment, fee_instalment, level_payments

PBOC_EXAMPLE = level_payments(100_000, 8_833.30, 12, start=dt.date(2021, 3, 12), upfront_fee=1_000)


class _Paragraphs(HTMLParser):
    """(font-size in em, text) of each <p>."""

    def __init__(self) -> None:
        super().__init__()
        self.items: list[tuple[float, str]] = []
        self._size: float | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "p":
            m = re.search(r"font-size:([\d.]+)em", dict(attrs).get("style") or "")
            self._size = float(m.group(1)) if m else 1.0
            self.items.append((self._size, ""))

    def handle_data(self, data: str) -> None:
        if self._size is not None:
            size, text = self.items[-1]
            self.items[-1] = (size, text + data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "p":
            self._size = None


def _paragraphs(html_text: str) -> list[tuple[float, str]]:
    parser = _Paragraphs()
    parser.feed(html_text)
    return parser.items


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_annualised_rate_is_first_and_at_least_as_prominent_as_any_period_rate(lang: str) -> None:
    d = loan_disclosure(PBOC_EXAMPLE, lang=lang)
    paras = _paragraphs(d.html)
    first_size, first_text = paras[0]
    assert "13.58%" in first_text
    period = [(size, text) for size, text in paras if ("月利率" in text or "Monthly rate" in text)]
    assert period, "the monthly rate is shown, below"
    assert all(first_size >= size for size, _ in period)
    assert all(paras.index(p) > 0 for p in period)
    # the text form: the annualised rate comes before any monthly rate
    lines = d.text.splitlines()
    rate_line = next(i for i, x in enumerate(lines) if "13.58%" in x)
    month_line = next(i for i, x in enumerate(lines) if "月利率" in x or "Monthly rate" in x)
    assert rate_line < month_line


def test_simple_and_compound_are_both_stated_and_labelled() -> None:
    zh = loan_disclosure(PBOC_EXAMPLE, lang="zh").text
    assert "年化利率（复利，IRR）：13.58%" in zh and "年化利率（单利）：12.80%" in zh
    en = loan_disclosure(PBOC_EXAMPLE, lang="en", headline="simple")
    assert en.text.splitlines()[1] == "Annualised rate (simple): 12.80%"
    assert "Annualised rate (compound, IRR): 13.58%" in en.text
    assert en.headline_rate == pytest.approx(0.128038, abs=1e-6)


def test_total_cost_and_table() -> None:
    d = loan_disclosure(PBOC_EXAMPLE, lang="en")
    assert "Amount you receive: 99,000.00 CNY" in d.text
    assert "Total cost (interest and fees): 6,999.60 CNY" in d.text
    assert d.text.count(" | 8,833.30 | ") == 12
    assert d.html.count("<tr>") == 13


def test_fee_plan_shows_its_fee_rate_under_the_annualised_rate() -> None:
    d = loan_disclosure(fee_instalment(12_000, 0.006, 12, start=dt.date(2026, 1, 15)), lang="zh")
    assert "月费率：0.60%" in d.text
    assert d.text.index("年化利率") < d.text.index("月费率")


def test_html_is_escaped_and_languages_are_checked() -> None:
    d = loan_disclosure(equal_instalment(1000, 0.1, 3, start=dt.date(2026, 1, 1)), lang="en", currency="<b>$</b>")
    assert "<b>" not in d.html and "&lt;b&gt;" in d.html
    with pytest.raises(ConfigError, match="language 'fr'"):
        loan_disclosure(PBOC_EXAMPLE, lang="fr")


def test_adverse_action_notice_lists_at_most_four_principal_reasons() -> None:
    """Regulation B 12 CFR 1002.9(b)(2), comment 9(b)(2)-1: specific reasons, more than four not helpful."""
    codes = ["PD_HIGH", "DTI_HIGH", "PD_HIGH", "DEBT_HIGH", "INCOME_LOW", "PRICE_ABOVE_CAP"]
    n = adverse_action_notice([REASONS[c] for c in codes], lender="Bank X", decided_on=dt.date(2026, 3, 1))
    assert [r.code for r in n.reasons] == ["PD_HIGH", "DTI_HIGH", "DEBT_HIGH", "INCOME_LOW"]
    assert "1. Estimated risk of default is too high [PD_HIGH]" in n.text
    assert "PRICE_ABOVE_CAP" not in n.text and "Equal Credit Opportunity Act" in n.text
    assert n.html.count("<li>") == 4
    zh = adverse_action_notice(decide(Applicant(0.5, 10_000)).reasons, lang="zh", max_reasons=2)
    assert len(zh.reasons) == 2 and "评估的违约风险过高" in zh.text and "个人信息保护法" in zh.text
    with pytest.raises(DataError, match="specific reasons"):
        adverse_action_notice([])
    with pytest.raises(ConfigError, match="max_reasons must be from 1 to 4"):
        adverse_action_notice([REASONS["PD_HIGH"]], max_reasons=5)
