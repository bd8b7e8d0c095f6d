"""Caps as data: the bundled rule sets load, each rule passes and fails where it should, bad files say why."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from misuan.errors import ConfigError
from misuan.lending.caps import (
    LoanFacts,
    binding_caps,
    check_caps,
    jurisdictions,
    load_rules,
    lpr_on,
)

D = dt.date
CN = load_rules("CN")
US = load_rules("us")


def _status(report: object, rule_id: str) -> str:
    return {c.rule_id: c.status for c in report.checks}[rule_id]  # type: ignore[attr-defined]


def test_bundled_rule_sets_load_with_sources_and_dates() -> None:
    assert set(jurisdictions()) >= {"CN", "US"}
    for rs in (CN, US):
        for rule in rs.rules:
            assert rule.source and rule.effective > D(2000, 1, 1) and rule.title
    ids = {r.id for r in CN.rules}
    assert {"cn.court.lpr4", "cn.financing_cost.24", "cn.microloan.24", "cn.microloan.lpr4_by_2027",
            "cn.internet_loan.line_200k", "cn.joint_lending.partner_share_30"} <= ids
    assert {r.id for r in US.rules} == {"us.mla.mapr_36"}


def test_comprehensive_financing_cost_24() -> None:
    ok = check_caps(LoanFacts("consumer_finance", D(2026, 3, 1), annualised_rate=0.2399), CN)
    bad = check_caps(LoanFacts("consumer_finance", D(2026, 3, 1), annualised_rate=0.2401), CN)
    assert ok.ok and not bad.ok
    (v,) = bad.violations
    assert (v.rule_id, v.figure, v.limit, v.check) == ("cn.financing_cost.24", 0.2401, 0.24, "max")
    assert "Jin Gui [2025] No. 9" in v.source and v.effective == D(2025, 10, 1)
    # before the notice took effect the rule is reported as upcoming and does not fail the check
    early = check_caps(LoanFacts("consumer_finance", D(2025, 6, 1), annualised_rate=0.30), CN)
    assert early.ok and _status(early, "cn.financing_cost.24") == "upcoming-fail"


def test_court_cap_is_four_times_the_lpr_at_the_contract_date() -> None:
    r = check_caps(LoanFacts("private", D(2024, 9, 1), annualised_rate=0.1341), CN)
    (c,) = r.checks
    assert c.limit == pytest.approx(4 * 0.0335) and not c.passed  # LPR 3.35 % from 22 Jul 2024
    assert "LPR 3.35%" in c.limit_text and "2024-07-22" in c.limit_text
    assert check_caps(LoanFacts("private", D(2024, 11, 1), annualised_rate=0.124), CN).checks[0].limit == pytest.approx(0.124)
    # an LPR given by the caller wins over the table
    given = check_caps(LoanFacts("private", D(2026, 1, 1), annualised_rate=0.13, lpr=0.035), CN)
    assert given.ok and "given" in given.checks[0].limit_text
    # licensed lenders are not bound by the court line (SPC reply of 29 Dec 2020)
    assert all(c.rule_id != "cn.court.lpr4" for c in check_caps(LoanFacts("bank", D(2026, 1, 1), annualised_rate=0.2), CN).checks)


def test_lpr_table() -> None:
    assert lpr_on(CN, D(2019, 8, 20)).one_year == 0.0425
    assert lpr_on(CN, D(2025, 5, 19)).one_year == 0.031
    assert lpr_on(CN, D(2030, 1, 1)).date == D(2025, 5, 20)
    with pytest.raises(ConfigError, match="no one-year LPR on 2019-01-01"):
        lpr_on(CN, D(2019, 1, 1))


def test_microloans_24_now_and_4_lpr_by_end_2027() -> None:
    now = check_caps(LoanFacts("microloan", D(2026, 6, 1), annualised_rate=0.20, term_days=365), CN)
    assert now.ok
    assert _status(now, "cn.microloan.24") == "pass"
    assert _status(now, "cn.microloan.lpr4_by_2027") == "upcoming-fail"
    later = check_caps(LoanFacts("microloan", D(2028, 1, 1), annualised_rate=0.20, term_days=365), CN)
    assert [v.rule_id for v in later.violations] == ["cn.microloan.lpr4_by_2027"]
    # loans of a month or less keep the 24 % ceiling after 2027
    short = check_caps(LoanFacts("microloan", D(2028, 1, 1), annualised_rate=0.20, term_days=30), CN)
    assert short.ok and "cn.microloan.short_term_24" in {c.rule_id for c in short.checks}
    # without a term the term-dependent rules are listed as not checked
    unknown = check_caps(LoanFacts("microloan", D(2028, 1, 1), annualised_rate=0.20), CN)
    assert ("cn.microloan.lpr4_by_2027", "no term_days given") in unknown.not_checked


def test_internet_loans_line_and_joint_lending_share() -> None:
    r = check_caps(LoanFacts("bank_internet", D(2026, 1, 1), amount=200_001, partner_share=0.29), CN)
    assert {v.rule_id for v in r.violations} == {"cn.internet_loan.line_200k", "cn.joint_lending.partner_share_30"}
    share = next(c for c in r.checks if c.rule_id == "cn.joint_lending.partner_share_30")
    assert share.check == "min" and share.limit == 0.30 and share.figure == 0.29
    assert check_caps(LoanFacts("bank_internet", D(2026, 1, 1), amount=200_000, partner_share=0.30), CN).ok
    missing = check_caps(LoanFacts("bank_internet", D(2026, 1, 1)), CN)
    assert {r for r, _ in missing.not_checked} >= {"cn.internet_loan.line_200k", "cn.joint_lending.partner_share_30"}


def test_mla_36_binds_covered_borrowers_only() -> None:
    covered = check_caps(LoanFacts("bank", D(2026, 1, 1), mapr=0.37, covered_borrower=True), US)
    assert [v.rule_id for v in covered.violations] == ["us.mla.mapr_36"]
    assert "232.4(b)" in covered.violations[0].source
    other = check_caps(LoanFacts("bank", D(2026, 1, 1), mapr=0.37), US)
    assert other.ok and other.not_checked[0][0] == "us.mla.mapr_36"


def test_binding_caps_for_the_policy() -> None:
    caps = binding_caps(CN, "bank_internet", D(2026, 1, 1))
    assert (caps.rate_cap, caps.amount_cap) == (0.24, 200_000)
    assert binding_caps(CN, "microloan", D(2028, 6, 1), term_days=365).rate_cap == pytest.approx(0.12)
    assert binding_caps(CN, "microloan", D(2028, 6, 1), term_days=20).rate_cap == 0.24
    assert binding_caps(US, "bank", D(2026, 1, 1)).rate_cap is None
    assert binding_caps(US, "bank", D(2026, 1, 1), covered_borrower=True).rate_cap == 0.36


def test_unknown_jurisdiction_and_lender() -> None:
    with pytest.raises(ConfigError, match="unknown jurisdiction 'XX'; the rule sets cover CN, US"):
        load_rules("XX")
    with pytest.raises(ConfigError, match="unknown lender type 'pawnshop'"):
        check_caps(LoanFacts("pawnshop", D(2026, 1, 1), annualised_rate=0.1), CN)


GOOD_RULE = '''
[[rule]]
id = "x.cap"
title = "a cap"
figure = "annualised_rate"
check = "max"
limit = 0.2
lenders = ["bank"]
effective = 2020-01-01
source = "somewhere"
'''


@pytest.mark.parametrize(("text", "message"), [
    ("this is not toml = = 1", "not valid TOML"),
    (GOOD_RULE, "needs a \\[ruleset\\] table"),
    ('[ruleset]\njurisdiction = "XX"\ntitle = "t"\n', "needs at least one \\[\\[rule\\]\\]"),
    ('[ruleset]\njurisdiction = "XX"\ntitle = "t"\n' + GOOD_RULE.replace('check = "max"', 'check = "most"'),
     "rule\\[1\\] 'x.cap'.check: must be 'max' or 'min'"),
    ('[ruleset]\njurisdiction = "XX"\ntitle = "t"\n' + GOOD_RULE.replace("limit = 0.2", "limit = -1"),
     "'x.cap'.limit: must be a number >= 0"),
    ('[ruleset]\njurisdiction = "XX"\ntitle = "t"\n' + GOOD_RULE.replace("limit = 0.2", "lpr_multiple = 4"),
     "uses lpr_multiple but the file has no \\[\\[lpr\\]\\] table"),
    ('[ruleset]\njurisdiction = "XX"\ntitle = "t"\n' + GOOD_RULE.replace('source = "somewhere"', ""),
     "'x.cap'.source: must be non-empty text"),
    ('[ruleset]\njurisdiction = "XX"\ntitle = "t"\n' + GOOD_RULE.replace("effective = 2020-01-01", 'effective = "soon"'),
     "'x.cap'.effective: must be a date"),
    ('[ruleset]\njurisdiction = "XX"\ntitle = "t"\n' + GOOD_RULE + GOOD_RULE, "appear more than once"),
    ('[ruleset]\njurisdiction = "XX"\ntitle = "t"\n' + GOOD_RULE.replace("figure =", "colour = 1\nfigure ="),
     "unknown key\\(s\\) \\['colour'\\]"),
])
def test_malformed_rule_file_is_one_clear_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "caps_xx.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message) as exc:
        load_rules(path=path)
    assert "\n" not in str(exc.value) and str(path) in str(exc.value) and exc.value.exit_code == 2


def test_own_rule_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('[ruleset]\njurisdiction = "XX"\ntitle = "t"\n' + GOOD_RULE, encoding="utf-8")
    rs = load_rules(path=path)
    assert not check_caps(LoanFacts("bank", D(2026, 1, 1), annualised_rate=0.25), rs).ok
    with pytest.raises(ConfigError, match="is for jurisdiction XX, not CN"):
        load_rules("CN", path=path)
