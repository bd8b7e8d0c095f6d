"""Repayment schedules: the table adds up, the cash flows match it, and impossible loans are refused."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math

import pytest

from misuan.errors import ConfigError, DataError
from misuan.lending import schedule as sched
from misuan.lending.rates import pboc_rate, regz_apr
from misuan.lending.schedule import CashFlow, Schedule
from misuan.lending.timing import UnitPeriod, add_months, appendix_j_time, infer_unit_period, year_fraction

D = dt.date
START = D(2026, 1, 31)


def _check_table(s: Schedule) -> None:
    """Rows repay the principal exactly, their payments are the cash flows, balances fall to zero."""
    assert math.isclose(sum(r.principal or 0 for r in s.rows), s.principal, abs_tol=0.005)
    assert s.rows[-1].balance == 0
    for r in s.rows:
        assert r.payment == pytest.approx((r.principal or 0) + (r.interest or 0) + r.fee, abs=0.006)
    assert [p.amount for p in s.payments] == [r.payment for r in s.rows]
    assert [p.date for p in s.payments] == [r.date for r in s.rows]
    assert s.total_cost == pytest.approx(s.total_interest + s.total_fees, abs=0.01)
    assert s.total_repaid == pytest.approx(s.amount_advanced + s.total_cost, abs=0.01)


@pytest.mark.parametrize("unit", ["month", "week", "2week", "semimonth", "day", "3month", "year"])
@pytest.mark.parametrize("build", [sched.equal_instalment, sched.equal_principal, sched.interest_only])
def test_every_builder_and_unit_adds_up(build: object, unit: str) -> None:
    s = build(12_345.67, 0.15, 18, unit=unit, start=START, upfront_fee=100, periodic_fee=5)  # type: ignore[operator]
    _check_table(s)
    assert s.amount_advanced == pytest.approx(12_245.67)
    assert s.unit == UnitPeriod.parse(unit)


def test_equal_instalment_is_level_and_its_rate_is_the_contract_rate() -> None:
    s = sched.equal_instalment(100_000, 0.12, 12, start=START)
    pays = [r.payment for r in s.rows]
    assert max(pays[:-1]) == min(pays[:-1]) == pytest.approx(8884.88, abs=0.01)  # the textbook annuity
    assert abs(pays[-1] - pays[0]) < 0.05
    assert pboc_rate(s).simple == pytest.approx(0.12, abs=1e-5)
    # month ends stay month ends: 31 Jan -> 28 Feb -> 31 Mar
    assert [r.date for r in s.rows[:3]] == [D(2026, 2, 28), D(2026, 3, 31), D(2026, 4, 30)]


def test_equal_principal_falls() -> None:
    s = sched.equal_principal(12_000, 0.12, 12, start=START)
    assert {r.principal for r in s.rows} == {1000.0}
    assert [r.payment for r in s.rows] == sorted((r.payment for r in s.rows), reverse=True)
    assert s.total_interest == pytest.approx(12_000 * 0.01 * 78 / 12, abs=0.05)  # 0.01 x (12+11+...+1) x 1000


def test_fee_instalment_annualised_rate_is_about_twice_the_quoted_one() -> None:
    """A 0.6 % monthly fee on the original principal over 12 months is 7.2 % a year "flat", but about
    13 % annualised: the borrower pays the fee on money already repaid (PBoC [2021] No. 3)."""
    s = sched.fee_instalment(12_000, 0.006, 12, start=START)
    _check_table(s)
    assert s.total_fees == pytest.approx(864)
    assert s.total_interest == 0
    r = pboc_rate(s)
    assert 0.129 < r.simple < 0.132 and r.compound > r.simple


def test_odd_first_period_moves_the_payment_not_the_rate() -> None:
    regular = sched.equal_instalment(10_000, 0.12, 12, start=START)
    long_first = sched.equal_instalment(10_000, 0.12, 12, start=START, first_payment=D(2026, 3, 20))
    short_first = sched.equal_instalment(10_000, 0.12, 12, start=START, first_payment=D(2026, 2, 10))
    assert short_first.rows[0].payment < regular.rows[0].payment < long_first.rows[0].payment
    for s in (long_first, short_first):
        _check_table(s)
        assert regz_apr(s).apr == pytest.approx(0.12, abs=5e-5)
    t, f = appendix_j_time(START, D(2026, 3, 20), UnitPeriod("month"))
    assert long_first.rows[0].interest == pytest.approx(10_000 * ((1 + f * 0.01) * 1.01**t - 1), abs=0.006)


def test_bullet_and_daily_simple_interest() -> None:
    s = sched.bullet(10_000, 0.0365, 30, unit="day", start=D(2026, 1, 1))
    assert len(s.rows) == 1 and s.rows[0].date == D(2026, 1, 31)
    assert s.rows[0].interest == pytest.approx(30.0)
    assert s.rows[0].payment == pytest.approx(10_030.0)


def test_fixed_payment_runs_until_repaid() -> None:
    s = sched.fixed_payment(10_000, 0.12, 1_000, start=START)
    _check_table(s)
    assert len(s.rows) == 11 and s.rows[-1].payment < 1_000
    assert sched.periods_to_repay(10_000, 0.0, 1_000) == 10


def test_from_flows_infers_the_unit_and_keeps_several_advances() -> None:
    flows = [CashFlow(D(2026, 1, 1), 3000, "advance"), CashFlow(D(2026, 2, 15), 2000, "advance")]
    flows += [CashFlow(d, 500, "payment") for d in sched.payment_dates(D(2026, 1, 1), 12, "month")]
    s = sched.from_flows(flows)
    assert s.unit == UnitPeriod("month") and len(s.advances) == 2 and s.amount_advanced == 5000
    assert s.flows()[0] == (D(2026, 1, 1), 3000)


@pytest.mark.parametrize(("call", "message"), [
    (lambda: sched.equal_instalment(-5, 0.1, 12), "principal must be positive"),
    (lambda: sched.equal_instalment(0, 0.1, 12), "principal must be positive"),
    (lambda: sched.equal_instalment(1000, -0.1, 12), "annual rate must be from 0"),
    (lambda: sched.equal_instalment(1000, 0.1, 0), "number of payments"),
    (lambda: sched.equal_instalment(1000, 0.1, 12, upfront_fee=1000), "takes the whole principal"),
    (lambda: sched.equal_instalment(1000, 0.1, 12, start=D(2026, 1, 1), first_payment=D(2025, 12, 1)),
     "must come after the start"),
    (lambda: sched.fixed_payment(10_000, 0.12, 100), "never repays"),
    (lambda: sched.level_payments(10_000, 100, 12), "never repays"),
    (lambda: sched.from_flows([CashFlow(D(2026, 1, 1), 100, "advance")]), "never repays"),
    (lambda: sched.from_flows([CashFlow(D(2026, 1, 1), 100, "payment")]), "at least one advance"),
    (lambda: sched.from_flows([CashFlow(D(2026, 1, 1), 100, "advance"), CashFlow(D(2025, 1, 1), 200, "payment")]),
     "before the first advance"),
    (lambda: sched.fee_instalment(1000, 2.0, 12), "fee rate per period"),
])
def test_impossible_loans_are_one_clear_data_error(call: object, message: str) -> None:
    with pytest.raises(DataError, match=message) as exc:
        call()  # type: ignore[operator]
    assert "\n" not in str(exc.value) and exc.value.exit_code == 3


def test_schedule_is_frozen() -> None:
    s = sched.equal_instalment(1000, 0.1, 3, start=START)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.principal = 5  # type: ignore[misc]


def test_unit_period_parsing() -> None:
    assert UnitPeriod.parse("quarter") == UnitPeriod("month", 3) == UnitPeriod.parse("3month")
    assert UnitPeriod.parse("fortnight") == UnitPeriod("week", 2) == UnitPeriod.parse("2 weeks")
    assert UnitPeriod.parse("semimonth").per_year == 24
    with pytest.raises(ConfigError, match="write day, week"):
        UnitPeriod.parse("lunar")


def test_appendix_j_times() -> None:
    # Appendix J (c)(1)(ii): 10 Feb to 1 Apr 1978 is 1 month and 19 days: t = 1, f = 19/30
    assert appendix_j_time(D(1978, 2, 10), D(1978, 4, 1), UnitPeriod("month")) == (1, pytest.approx(19 / 30))
    # (c)(1)(iv): 23 May to 1 Oct 1978, quarterly: t = 1, f = 39/90
    assert appendix_j_time(D(1978, 5, 23), D(1978, 10, 1), UnitPeriod("month", 3)) == (1, pytest.approx(39 / 90))
    # (c)(1)(v): 20 Mar to 21 Apr 1978, weekly: t = 4, f = 4/7
    assert appendix_j_time(D(1978, 3, 20), D(1978, 4, 21), UnitPeriod("week")) == (4, pytest.approx(4 / 7))
    # (c)(4)(ii): 10 Jan to 1 Mar 1978, every 2 months: t = 0, f = (1 month + 22 days) / 60 days
    assert appendix_j_time(D(1978, 1, 10), D(1978, 3, 1), UnitPeriod("month", 2)) == (0, pytest.approx(52 / 60))
    with pytest.raises(DataError):
        appendix_j_time(D(2026, 1, 2), D(2026, 1, 1), UnitPeriod("month"))


def test_unit_inference_prefers_the_most_frequent_then_the_shortest() -> None:
    months = sched.payment_dates(D(2026, 1, 1), 6, "month")
    assert infer_unit_period(months) == UnitPeriod("month")
    assert infer_unit_period([D(2026, 1, 1), D(2026, 1, 15), D(2026, 2, 15)]) == UnitPeriod("week", 2)
    with pytest.raises(ConfigError, match="one payment date"):
        infer_unit_period([D(2026, 1, 1)])


def test_year_fractions() -> None:
    assert year_fraction(D(1994, 1, 1), D(1995, 7, 1)) == pytest.approx(546 / 365)
    # a leap year counts 366 days: half of 2024 is 182/366 from 1 Jan
    assert year_fraction(D(2024, 1, 1), D(2024, 7, 1)) == pytest.approx(182 / 366)
    assert year_fraction(D(2024, 1, 1), D(2024, 7, 1), "days365") == pytest.approx(182 / 365)
    assert year_fraction(D(2026, 1, 31), D(2026, 4, 30), "months") == pytest.approx(3 / 12)
    assert add_months(D(2026, 1, 31), 1) == D(2026, 2, 28)
    assert add_months(D(2026, 1, 30), 1) == D(2026, 2, 28)
    assert add_months(D(2026, 2, 28), 1) == D(2026, 3, 31)  # month end stays month end
    assert add_months(D(2026, 2, 28), 1, month_end=False) == D(2026, 3, 28)
