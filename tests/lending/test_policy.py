"""The limit and pricing policy: monotone in PD, within the caps, reviews move by bounded steps."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from misuan.errors import ConfigError, DataError
from misuan.lending.caps import PolicyCaps, binding_caps, load_rules
from misuan.lending.policy import Applicant, PolicyParams, decide, review_limit
from misuan.params import ParamError

PROFILES = settings(max_examples=300, deadline=None, derandomize=True, database=None)

pds = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
money = st.floats(min_value=0.0, max_value=200_000.0, allow_nan=False)
params = st.builds(
    PolicyParams,
    funding_cost=st.floats(0, 0.1), operating_cost=st.floats(0, 0.1), margin=st.floats(0, 0.1),
    lgd=st.floats(0.05, 1.0), rate_cap=st.floats(0.05, 1.0), max_pd=st.floats(0.01, 0.5),
    max_dti=st.floats(0.05, 1.0), income_multiple=st.floats(0.5, 24), term_months=st.integers(1, 120),
    risk_haircut=st.floats(0, 1), min_limit=st.floats(0, 5_000), max_limit=st.floats(5_000, 500_000),
    limit_unit=st.sampled_from([1.0, 50.0, 100.0, 1000.0]),
    max_step_up=st.floats(0, 2), max_step_down=st.floats(0, 1),
)
caps = st.builds(PolicyCaps, st.one_of(st.none(), st.floats(0.05, 0.36)), st.one_of(st.none(), st.floats(1_000, 300_000)),
                 st.just(()))


def _applicant(pd: float, income: float, payments: float, debt: float) -> Applicant:
    return Applicant(pd, income, payments, debt)


@PROFILES
@given(pd1=pds, pd2=pds, income=money, payments=money, debt=money, p=params, c=caps)
def test_higher_pd_never_gives_a_higher_limit_or_a_lower_price(
    pd1: float, pd2: float, income: float, payments: float, debt: float, p: PolicyParams, c: PolicyCaps
) -> None:
    lo, hi = sorted((pd1, pd2))
    better = decide(_applicant(lo, income, payments, debt), p, c)
    worse = decide(_applicant(hi, income, payments, debt), p, c)
    assert worse.limit <= better.limit
    assert worse.rate >= better.rate
    assert worse.required_rate >= better.required_rate
    assert not (worse.approved and not better.approved)


@PROFILES
@given(pd=pds, income=money, payments=money, debt=money, p=params, c=caps)
def test_caps_are_never_exceeded(pd: float, income: float, payments: float, debt: float, p: PolicyParams,
                                 c: PolicyCaps) -> None:
    d = decide(_applicant(pd, income, payments, debt), p, c)
    assert d.rate <= p.rate_cap and (c.rate_cap is None or d.rate <= c.rate_cap)
    assert d.limit <= p.max_limit and (c.amount_cap is None or d.limit <= c.amount_cap)
    assert d.limit == 0 or (d.approved and d.limit >= p.min_limit)
    assert d.limit == 0 or abs(d.limit / p.limit_unit - round(d.limit / p.limit_unit)) < 1e-6
    if not d.approved:
        assert d.reasons, "a decline always has reasons"


@PROFILES
@given(current=money, pd1=pds, pd2=pds, income=money, payments=money, debt=money, p=params, c=caps)
def test_reviews_move_by_bounded_steps_within_caps_and_monotone_in_pd(
    current: float, pd1: float, pd2: float, income: float, payments: float, debt: float, p: PolicyParams,
    c: PolicyCaps,
) -> None:
    current = round(current / p.limit_unit) * p.limit_unit
    lo, hi = sorted((pd1, pd2))
    a = review_limit(current, _applicant(lo, income, payments, debt), p, c)
    b = review_limit(current, _applicant(hi, income, payments, debt), p, c)
    assert b.new_limit <= a.new_limit
    cap = min(p.max_limit, c.amount_cap if c.amount_cap is not None else float("inf"))
    for r in (a, b):
        assert r.new_limit <= cap
        assert r.new_limit <= current * (1 + p.max_step_up) + 1e-6
        # a step down is bounded, unless a cap below the bound forces it
        assert r.new_limit >= min(current * (1 - p.max_step_down) - 1e-6, cap)


def test_a_worked_decision_and_its_reasons() -> None:
    caps_cn = binding_caps(load_rules("CN"), "bank_internet", dt.date(2026, 1, 1))
    good = decide(Applicant(0.01, 20_000, 2_000, 10_000), caps=caps_cn)
    assert good.approved and 0 < good.limit <= 200_000 and good.rate < 0.24
    assert good.rate == pytest.approx((0.03 + 0.02 + 0.02 + 0.01 * 0.8) / (1 - 0.01 * 0.8))
    bad = decide(Applicant(0.30, 20_000, 2_000, 10_000), caps=caps_cn)
    assert not bad.approved and bad.limit == 0 and bad.rate == 0.24
    assert [r.code for r in bad.reasons][:2] == ["PD_HIGH", "PRICE_ABOVE_CAP"]
    broke = decide(Applicant(0.01, 5_000, 2_600, 0))
    assert not broke.approved and "DTI_HIGH" in [r.code for r in broke.reasons]


def test_review_steps_and_reasons() -> None:
    p = PolicyParams(max_step_up=0.2, max_step_down=0.5)
    up = review_limit(50_000, Applicant(0.01, 30_000), p, previous_pd=0.05)
    assert up.new_limit == 60_000 and up.direction == "up"
    assert [r.code for r in up.reasons][0] == "PD_FELL" and "STEP_UP_BOUNDED" in [r.code for r in up.reasons]
    down = review_limit(50_000, Applicant(0.5, 30_000), p, previous_pd=0.05)
    assert down.target_limit == 0 and down.new_limit == 25_000
    assert {"PD_ROSE", "PD_HIGH", "STEP_DOWN_BOUNDED"} <= {r.code for r in down.reasons}
    # a cap lowered below the current limit applies at once, whatever the step
    small_steps = PolicyParams(max_step_up=0.05, max_step_down=0.05, max_limit=500_000)
    capped = review_limit(250_000, Applicant(0.01, 100_000), small_steps, PolicyCaps(0.24, 200_000, ()))
    assert capped.new_limit == 200_000 and "AMOUNT_CAP" in [r.code for r in capped.reasons]


def test_params_are_checked_once_where_declared() -> None:
    with pytest.raises(ParamError, match="lending policy parameter max_pd: must be a number"):
        PolicyParams(max_pd=1.5)
    with pytest.raises(ParamError, match="term_months: must be an integer"):
        PolicyParams(term_months=12.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="min_limit: must be at most max_limit"):
        PolicyParams(min_limit=10_000, max_limit=5_000)
    with pytest.raises(DataError, match="PD must be a probability"):
        Applicant(1.2, 1000)
    with pytest.raises(DataError, match="monthly income must be zero or positive"):
        Applicant(0.1, -5)
