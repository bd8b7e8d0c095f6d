"""A loan product checked against the caps with its fee counted, and the causes of a policy's decline."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from misuan.errors import ConfigError
from misuan.lending.caps import load_rules
from misuan.lending.policy import Applicant, PolicyParams, decide
from misuan.lending.product import LoanProduct, check_product
from misuan.params import ParamError

DAY = dt.date(2026, 11, 23)


def test_the_upfront_fee_is_deducted_and_counted_in_the_annualised_rate() -> None:
    product = LoanProduct(upfront_fee_rate=0.01)
    check = check_product(product, 50_000.0, 0.12, DAY)
    assert check.schedule.upfront_fee == 500.0 and check.schedule.amount_advanced == 49_500.0
    assert len(check.schedule.payments) == 12
    # without a fee the PBoC simple rate of an equal-instalment loan is its nominal rate
    free = check_product(LoanProduct(upfront_fee_rate=0.0), 50_000.0, 0.12, DAY)
    assert free.rate.simple == pytest.approx(0.12, abs=2e-5)
    assert check.rate.simple == pytest.approx(0.1392, abs=5e-4)  # the 1 % fee adds about 1.9 points
    assert check.caps.ok and [c.rule_id for c in check.caps.checks] == ["cn.financing_cost.24", "cn.internet_loan.line_200k"]


def test_a_nominal_rate_under_the_cap_can_break_it_with_the_fee() -> None:
    check = check_product(LoanProduct(upfront_fee_rate=0.02), 10_000.0, 0.22, DAY)
    assert 0.22 < 0.24 < check.rate.simple
    assert [c.rule_id for c in check.caps.violations] == ["cn.financing_cost.24"]
    big = check_product(LoanProduct(), 250_000.0, 0.10, DAY)
    assert [c.rule_id for c in big.caps.violations] == ["cn.internet_loan.line_200k"]


def test_the_product_caps_bind_its_lender_type_and_term() -> None:
    rules = load_rules("CN")
    caps = LoanProduct().caps(rules, DAY)
    assert (caps.rate_cap, caps.amount_cap) == (0.24, 200_000.0)
    assert LoanProduct(lender="consumer_finance").caps(rules, DAY).amount_cap is None
    with pytest.raises(ConfigError, match="unknown lender type 'pawnshop'"):
        check_product(LoanProduct(lender="pawnshop"), 1_000.0, 0.1, DAY, rules)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"term_months": 0}, "term_months"), ({"term_months": 12.0}, "term_months"),
     ({"upfront_fee_rate": 1.0}, "upfront_fee_rate"), ({"upfront_fee_rate": "1%"}, "upfront_fee_rate")],
)
def test_bad_product_terms_are_refused(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ParamError, match=f"loan product parameter {field}:"):
        LoanProduct(**kwargs)  # type: ignore[arg-type]


def test_decline_causes_leave_out_the_capacity_bound_of_a_risk_decline() -> None:
    p = PolicyParams()
    risky = decide(Applicant(0.4, 10_000.0), p)
    assert "DTI_HIGH" in [r.code for r in risky.reasons]  # the bound that sized the limit ...
    assert [r.code for r in risky.decline_causes] == ["PD_HIGH", "PRICE_ABOVE_CAP"]  # ... did not decline
    poor = decide(Applicant(0.01, 100.0), p)
    assert not poor.approved and [r.code for r in poor.decline_causes] == ["DTI_HIGH", "LIMIT_BELOW_MINIMUM"]
    assert decide(Applicant(0.01, 10_000.0), p).decline_causes == ()


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(pd=st.floats(0, 1), income=st.floats(0, 100_000), payments=st.floats(0, 50_000), debt=st.floats(0, 500_000))
def test_every_decline_has_a_cause(pd: float, income: float, payments: float, debt: float) -> None:
    d = decide(Applicant(pd, income, payments, debt))
    assert bool(d.decline_causes) == (not d.approved)
    assert {r.code for r in d.decline_causes} <= {r.code for r in d.reasons}
