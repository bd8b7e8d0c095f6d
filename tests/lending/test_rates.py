"""Published worked examples, reproduced: PBoC [2021] No. 3, Regulation Z Appendix J (c), EU APRC examples."""

from __future__ import annotations

import datetime as dt

import pytest

from misuan.errors import DataError
from misuan.lending.rates import (
    IRREGULAR_TOLERANCE,
    REGULAR_TOLERANCE,
    eu_aprc,
    mla_mapr,
    pboc_rate,
    regz_apr,
    round_half_up,
)
from misuan.lending.schedule import (
    CashFlow,
    Schedule,
    equal_instalment,
    from_flows,
    level_payments,
    payment_dates,
)

D = dt.date


def test_pboc_announcement_2021_no3_example() -> None:
    """PBoC Announcement [2021] No. 3, annex example: 100,000 lent, 1,000 fee taken at the start,
    12 monthly payments of 8,833.30 -> monthly IRR 1.06698 %, 12.80 % simple, 13.58 % compound."""
    s = level_payments(100_000, 8_833.30, 12, start=D(2021, 3, 12), upfront_fee=1_000)
    assert s.amount_advanced == 99_000
    r = pboc_rate(s)
    assert r.period_rate == pytest.approx(0.0106698, abs=5e-8)
    assert round(r.simple * 100, 2) == 12.80
    assert round(r.compound * 100, 2) == 13.58
    assert r.periods_per_year == 12


def test_pboc_rate_of_an_equal_instalment_loan_is_its_contract_rate() -> None:
    s = equal_instalment(50_000, 0.1, 24, start=D(2026, 1, 10))
    assert pboc_rate(s).simple == pytest.approx(0.1, abs=2e-5)  # cents rounding only


def _flows(advance: float, on: dt.date, payments: list[tuple[dt.date, float]], unit: str | None) -> Schedule:
    return from_flows([CashFlow(on, advance, "advance")] + [CashFlow(d, a, "payment") for d, a in payments], unit=unit)


def _series(first: dt.date, n: int, amount: float, unit: str) -> list[tuple[dt.date, float]]:
    return [(d, amount) for d in payment_dates(first - dt.timedelta(days=1), n, unit, first)]


# 12 CFR 1026, Appendix J (c) "Examples for the actuarial method"; the same figures are reproduced by
# the tests of simontreanor/FSharp.Finance.Personal (tests/AprUsActuarialTests.fs)
APPENDIX_J = [
    ("(c)(1)(i) monthly, regular first period", 5000, D(1978, 1, 10), _series(D(1978, 2, 10), 24, 230, "month"), "month", 9.69),
    ("(c)(1)(ii) monthly, long first period", 6000, D(1978, 2, 10), _series(D(1978, 4, 1), 36, 200, "month"), "month", 11.82),
    ("(c)(1)(iii) semimonthly, short first period", 5000, D(1978, 2, 23),
     _series(D(1978, 3, 1), 24, 219.17, "semimonth"), "semimonth", 10.34),
    ("(c)(1)(iv) quarterly, long first period", 10000, D(1978, 5, 23),
     _series(D(1978, 10, 1), 40, 385, "3month"), "3month", 8.97),
    ("(c)(1)(v) weekly, long first period", 500, D(1978, 3, 20), _series(D(1978, 4, 21), 30, 17.60, "week"), "week", 14.96),
    ("(c)(2)(i) monthly, odd first payment", 5000, D(1978, 1, 10),
     [(D(1978, 2, 10), 250)] + _series(D(1978, 3, 10), 23, 230, "month"), "month", 10.08),
    ("(c)(2)(ii) every 4 weeks, odd first payment", 400, D(1978, 3, 18),
     [(D(1978, 4, 20), 39.50)] + _series(D(1978, 5, 18), 11, 38.31, "4week"), "4week", 28.50),
    ("(c)(3)(i) monthly, odd final payment", 5000, D(1978, 1, 10),
     _series(D(1978, 2, 10), 23, 230, "month") + [(D(1980, 1, 10), 280)], "month", 10.50),
    ("(c)(3)(ii) every 2 weeks, odd final payment", 200, D(1978, 4, 3),
     _series(D(1978, 4, 11), 19, 9.50, "2week") + [(D(1978, 4, 11) + dt.timedelta(days=14 * 19), 30)], "2week", 12.22),
    ("(c)(4)(i) monthly, odd first and final payments", 5000, D(1978, 1, 10),
     [(D(1978, 2, 10), 250)] + _series(D(1978, 3, 10), 22, 230, "month") + [(D(1980, 1, 10), 280)], "month", 10.90),
    ("(c)(4)(ii) every 2 months, short first period, odd first and final payments", 8000, D(1978, 1, 10),
     [(D(1978, 3, 1), 449.36)] + _series(D(1978, 5, 1), 18, 465, "2month") + [(D(1981, 5, 1), 200)], "2month", 7.30),
    ("(c)(5)(i) single advance, single payment, term in days", 1000, D(1978, 1, 3), [(D(1978, 9, 15), 1080)], None, 11.45),
]


@pytest.mark.parametrize(("name", "advance", "on", "payments", "unit", "apr"), APPENDIX_J, ids=[c[0] for c in APPENDIX_J])
def test_regulation_z_appendix_j_examples(name: str, advance: float, on: dt.date, payments: list[tuple[dt.date, float]],
                                          unit: str | None, apr: float) -> None:
    s = _flows(advance, on, payments, unit)
    result = regz_apr(s)
    assert round(result.apr * 100, 2) == apr
    # the unit period Appendix J (b)(4) picks from the dates alone is the same
    if len(payments) > 1:
        assert regz_apr(_flows(advance, on, payments, None)).unit == result.unit


def test_single_advance_single_payment_uses_the_term_as_unit_period() -> None:
    s = _flows(1000, D(1978, 1, 3), [(D(1978, 9, 15), 1080)], None)
    r = regz_apr(s)
    assert r.unit.kind == "day" and r.unit.count == 255 and r.per_year == pytest.approx(365 / 255)
    # a term of full months: 12 / months unit periods a year
    r = regz_apr(_flows(1000, D(2026, 1, 15), [(D(2026, 4, 15), 1030)], None))
    assert r.unit.label == "3 months" and r.apr == pytest.approx(0.12)
    # longer than a year: the unit period is a year, the rest a fraction of 365 days
    r = regz_apr(_flows(1000, D(2026, 1, 1), [(D(2027, 7, 2), 1200)], None))
    assert r.unit.kind == "year"


def test_tolerance_one_eighth_point_regular_one_quarter_irregular() -> None:
    """12 CFR 1026.22(a)(2): within 1/8 of 1 percentage point in a regular transaction; (a)(3): 1/4
    point in an irregular one (here: several advances)."""
    regular = regz_apr(_flows(5000, D(1978, 1, 10), _series(D(1978, 2, 10), 24, 230, "month"), "month"))
    assert regular.regular and regular.tolerance == REGULAR_TOLERANCE == 0.00125
    assert regular.check(regular.apr + 0.00125).accurate
    assert regular.check(regular.apr - 0.00124).accurate
    assert not regular.check(regular.apr + 0.0013).accurate
    assert "1026.22(a)(2)" in regular.check(0.1).rule

    flows = [CashFlow(D(2026, 1, 1), 3000, "advance"), CashFlow(D(2026, 3, 1), 2000, "advance")]
    flows += [CashFlow(d, 450, "payment") for d in payment_dates(D(2026, 1, 1), 12, "month")]
    irregular = regz_apr(from_flows(flows))
    assert not irregular.regular and irregular.tolerance == IRREGULAR_TOLERANCE == 0.0025
    assert irregular.check(irregular.apr + 0.0024).accurate
    assert not irregular.check(irregular.apr + 0.0026).accurate


def test_irregular_payment_amounts_make_the_transaction_irregular() -> None:
    pays = _series(D(2026, 2, 1), 12, 100, "month")
    pays[5] = (pays[5][0], 150)
    assert not regz_apr(_flows(1200, D(2026, 1, 1), pays, "month")).regular


def test_odd_first_period_apr_is_the_contract_rate() -> None:
    s = equal_instalment(10_000, 0.18, 24, start=D(2026, 1, 10), first_payment=D(2026, 3, 1))
    assert regz_apr(s).apr == pytest.approx(0.18, abs=5e-5)


def test_mla_mapr_counts_the_other_charges() -> None:
    """32 CFR 232.4(c): credit insurance and ancillary fees raise the MAPR above the APR."""
    s = equal_instalment(2_000, 0.30, 12, start=D(2026, 1, 1), upfront_fee=40)
    m = mla_mapr(s, additional_charges=60)
    assert m.apr == pytest.approx(regz_apr(s).apr)
    assert m.mapr > m.apr > 0.30
    assert m.mapr > 0.36  # the 36 % line of 32 CFR 232.4(b) is crossed once the charges count
    with pytest.raises(DataError, match="take the whole advance"):
        mla_mapr(s, additional_charges=5000)


# Directive 98/7/EC, Annex II "Examples of calculation" (A: calendar basis, 365 days) for the APRC
# equation that Directive 2008/48/EC Annex I keeps
EU = [
    ("first example: 1,000 repaid by 1,200 after 546 days", 1000, [(D(1995, 7, 1), 1200)], 12.96, 13.0),
    ("second example: 50 retained, 950 lent", 950, [(D(1995, 7, 1), 1200)], 16.90, 16.9),
    ("third example: two payments of 600 after one and two years", 1000, [(D(1995, 1, 1), 600), (D(1996, 1, 1), 600)],
     13.07, 13.1),
]


@pytest.mark.parametrize(("name", "advance", "payments", "two_dp", "one_dp"), EU, ids=[e[0] for e in EU])
def test_eu_aprc_published_examples(name: str, advance: float, payments: list[tuple[dt.date, float]],
                                    two_dp: float, one_dp: float) -> None:
    s = _flows(advance, D(1994, 1, 1), payments, None)
    a = eu_aprc(s, basis="calendar")
    assert a.rounded(2) == two_dp
    assert a.rounded(1) == one_dp
    assert a.rounded(0) == one_dp  # at least one decimal place (Annex I remark (d))


def test_eu_third_example_solves_the_quadratic_exactly() -> None:
    # the directive gives i = 0.1306623 by algebra
    s = _flows(1000, D(1994, 1, 1), [(D(1995, 1, 1), 600), (D(1996, 1, 1), 600)], None)
    assert eu_aprc(s).aprc == pytest.approx(0.1306623, abs=1e-7)


def test_eu_year_bases_differ_only_in_the_odd_days() -> None:
    s = _flows(1000, D(1994, 1, 1), [(D(1995, 7, 1), 1200)], None)
    assert eu_aprc(s, basis="days365").aprc == pytest.approx(eu_aprc(s, basis="calendar").aprc)
    assert eu_aprc(s, basis="months").aprc == pytest.approx(1.2 ** (1 / 1.5) - 1)  # 18 equal months


def test_round_half_up() -> None:
    assert round_half_up(12.95, 1) == 13.0
    assert round_half_up(16.849, 1) == 16.8


def test_extreme_payday_aprc_is_still_found() -> None:
    # a one-week loan of 100 costing 30: APRC (1.3)^(365/7) - 1, about 8.5 x 10^5 (8.5 x 10^7 %)
    s = _flows(100, D(2026, 1, 1), [(D(2026, 1, 8), 130)], None)
    assert eu_aprc(s).aprc == pytest.approx(1.3 ** (365 / 7) - 1, rel=1e-9)
