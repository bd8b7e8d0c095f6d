"""Annualised rates of a loan, each as its rule defines it, all solved by :func:`~misuan.lending.rootfind.solve_rate`.

- :func:`pboc_rate`: PBoC Announcement [2021] No. 3 (12 Mar 2021) — the annualised rate of all the
  borrower's costs (interest and directly related fees) over the principal actually occupied. The IRR
  per repayment period ``r`` solves ``advance = sum payments discounted at r`` (fees taken at the start
  reduce the advance); the announcement allows the compound form ``(1 + r)^k - 1`` and the simple form
  ``k r`` (``k`` periods a year), the simple one labelled as such. Its example: 100,000 lent, 1,000 fee,
  12 monthly payments of 8,833.30: ``r`` = 1.06698 %, 12.80 % simple, 13.58 % compound.
- :func:`regz_apr`: US Regulation Z (12 CFR 1026.22 and Appendix J), the actuarial method: ``APR = i x
  unit periods per year`` where ``i`` solves Appendix J's general equation (b)(8) with odd-period
  fractions discounted by ``(1 + f i)``; accurate if within 1/8 point of the disclosed APR in a regular
  transaction and 1/4 point in an irregular one (1026.22(a)(2)-(3)).
- :func:`mla_mapr`: Military Lending Act (10 U.S.C. 987; 32 CFR 232.4(c)): the APR with the finance
  charges *and* credit insurance premiums, debt-cancellation, ancillary-product, application and
  participation fees counted, by the Appendix J method for closed-end credit.
- :func:`eu_aprc`: EU Consumer Credit Directive 2008/48/EC, Annex I: ``X`` with ``sum C_k (1 + X)^-t_k =
  sum D_l (1 + X)^-s_l``, times in years from the first drawdown (see :mod:`~misuan.lending.timing`),
  expressed to at least one decimal place (remark (d)). Directive (EU) 2023/2225 keeps the same basis.
- :func:`xirr` and :func:`periodic_irr`: the plain rates the others build on, for cross-checks.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Sequence

from misuan.errors import ConfigError
from misuan.lending.errors import LoanError
from misuan.lending.rootfind import CashFlowEquation, solve_rate
from misuan.lending.schedule import CashFlow, Schedule
from misuan.lending.timing import UnitPeriod, YearBasis, add_months, appendix_j_time, year_fraction

__all__ = [
    "REGULAR_TOLERANCE",
    "IRREGULAR_TOLERANCE",
    "EuAprc",
    "MlaMapr",
    "PbocRate",
    "RegZApr",
    "ToleranceCheck",
    "eu_aprc",
    "mla_mapr",
    "pboc_rate",
    "periodic_irr",
    "regz_apr",
    "round_half_up",
    "xirr",
]

REGULAR_TOLERANCE = 0.00125  # 1/8 of 1 percentage point, 12 CFR 1026.22(a)(2)
IRREGULAR_TOLERANCE = 0.0025  # 1/4 of 1 percentage point, 12 CFR 1026.22(a)(3)


def round_half_up(x: float, places: int) -> float:
    """Rounded as CCD Annex I remark (d) says: a following digit of 5 or more rounds up."""
    q = 10**places
    return math.floor(x * q + 0.5 + 1e-9) / q


def _equation(advances: Sequence[CashFlow], payments: Sequence[CashFlow], unit: UnitPeriod, what: str) -> CashFlowEquation:
    start = min(a.date for a in advances)
    amounts: list[float] = []
    times: list[float] = []
    fractions: list[float] = []
    for flow, sign in [(a, 1.0) for a in advances] + [(p, -1.0) for p in payments]:
        t, f = appendix_j_time(start, flow.date, unit)
        amounts.append(sign * flow.amount)
        times.append(float(t))
        fractions.append(f)
    return CashFlowEquation(tuple(amounts), tuple(times), tuple(fractions), what)


# --- PBoC ------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class PbocRate:
    """PBoC Announcement [2021] No. 3: the IRR per period and its simple (单利) and compound (复利) annualisations."""

    period_rate: float
    periods_per_year: float
    unit: UnitPeriod

    @property
    def simple(self) -> float:
        """``k r``: the simple annualised rate; must be labelled "simple" (单利) when shown."""
        return self.period_rate * self.periods_per_year

    @property
    def compound(self) -> float:
        """``(1 + r)^k - 1``: the compound annualised rate (the effective annual rate)."""
        return (1 + self.period_rate) ** self.periods_per_year - 1

    def as_dict(self) -> dict[str, object]:
        return {"rule": "PBoC [2021] No. 3", "unit": self.unit.label, "period_rate": self.period_rate,
                "periods_per_year": self.periods_per_year, "simple": self.simple, "compound": self.compound}


def pboc_rate(schedule: Schedule, *, days_per_year: int = 365) -> PbocRate:
    """The PBoC annualised rate of ``schedule``: the IRR per unit period of the net advance against the
    payments (odd first periods counted as Appendix J fractions), annualised by ``k`` periods a year
    (12, 52, 24; ``days_per_year`` for daily loans: 365, or 360 by the banking convention)."""
    if days_per_year not in (360, 365):
        raise ConfigError(f"days_per_year must be 360 or 365, not {days_per_year!r}")
    unit = schedule.unit
    eq = _equation(schedule.advances, schedule.payments, unit, "PBoC annualised rate")
    per_year = days_per_year / unit.count if unit.kind == "day" else unit.per_year
    return PbocRate(solve_rate(eq), per_year, unit)


# --- Regulation Z ----------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ToleranceCheck:
    """Whether a disclosed APR is accurate under 12 CFR 1026.22(a)(2)-(3)."""

    disclosed: float
    computed: float
    tolerance: float
    regular: bool

    @property
    def difference(self) -> float:
        return self.disclosed - self.computed

    @property
    def accurate(self) -> bool:
        return abs(self.difference) <= self.tolerance + 1e-12

    @property
    def rule(self) -> str:
        return "12 CFR 1026.22(a)(2) (regular, 1/8 point)" if self.regular else "12 CFR 1026.22(a)(3) (irregular, 1/4 point)"


@dataclasses.dataclass(frozen=True)
class RegZApr:
    """The Appendix J APR: ``period_rate x per_year``, the unit period used, and whether the
    transaction is regular (one advance, equal periods, equal payments but the first and last)."""

    period_rate: float
    unit: UnitPeriod
    per_year: float
    regular: bool

    @property
    def apr(self) -> float:
        return self.period_rate * self.per_year

    @property
    def tolerance(self) -> float:
        return REGULAR_TOLERANCE if self.regular else IRREGULAR_TOLERANCE

    def check(self, disclosed: float) -> ToleranceCheck:
        """Is ``disclosed`` (a fraction, 0.0969 for 9.69 %) within tolerance of this APR?"""
        return ToleranceCheck(disclosed, self.apr, self.tolerance, self.regular)

    def as_dict(self) -> dict[str, object]:
        return {"rule": "12 CFR 1026 Appendix J", "apr": self.apr, "unit": self.unit.label,
                "unit_periods_per_year": self.per_year, "regular": self.regular, "tolerance": self.tolerance}


def _single_payment_unit(start: dt.date, when: dt.date) -> UnitPeriod:
    """The unit period of a single-advance, single-payment transaction (Appendix J (b)(4)(iii) and
    (b)(5)(v)): the term, up to a year; full months give 12/months a year, full weeks 52/weeks, days 365/days."""
    if add_months(start, 12, month_end=False) <= when:
        return UnitPeriod("year")
    for months in range(1, 12):
        if add_months(start, months, month_end=False) == when:
            return UnitPeriod("month", months)
    days = (when - start).days
    if days <= 0:
        raise LoanError(f"the payment on {when} must come after the advance on {start}")
    return UnitPeriod("week", days // 7) if days % 7 == 0 else UnitPeriod("day", days)


def _is_regular(schedule: Schedule, unit: UnitPeriod) -> bool:
    """1026.22(a)(2)-(3): regular = single advance, payments at equal intervals of the unit period (an odd
    first period allowed) and of equal amounts (an odd first and last payment allowed)."""
    if len(schedule.advances) != 1:
        return False
    pays = sorted(schedule.payments, key=lambda p: p.date)
    middle = [p.amount for p in pays[1:-1]]
    if middle and max(middle) - min(middle) > 0.005:
        return False
    start = pays[0].date
    for k, p in enumerate(pays):
        t, f = appendix_j_time(start, p.date, unit)
        if t != k or f != 0:
            return False
    return True


def regz_apr(schedule: Schedule, *, unit: UnitPeriod | None = None) -> RegZApr:
    """The APR by 12 CFR 1026 Appendix J's actuarial method.

    ``unit`` defaults to the schedule's unit period (for :func:`~misuan.lending.schedule.from_flows`,
    the most frequent interval between payments); a single advance with a single payment uses the term.
    The advance is the amount financed: prepaid finance charges (the schedule's ``upfront_fee``) are
    already deducted from it.
    """
    if len(schedule.advances) == 1 and len(schedule.payments) == 1:
        u = _single_payment_unit(schedule.advances[0].date, schedule.payments[0].date)
    else:
        u = unit or schedule.unit
    eq = _equation(schedule.advances, schedule.payments, u, "APR")
    return RegZApr(solve_rate(eq), u, u.per_year, _is_regular(schedule, u))


# --- Military Lending Act --------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class MlaMapr:
    """32 CFR 232.4(c): the military APR and the charges it counts beyond the finance charge."""

    mapr: float
    apr: float
    additional_charges: float

    def as_dict(self) -> dict[str, object]:
        return {"rule": "32 CFR 232.4(c)", "mapr": self.mapr, "apr": self.apr,
                "additional_charges": self.additional_charges}


def mla_mapr(schedule: Schedule, *, additional_charges: float = 0.0, unit: UnitPeriod | None = None) -> MlaMapr:
    """The MAPR: Appendix J's APR of the schedule after ``additional_charges`` (credit insurance
    premiums, debt-cancellation and ancillary-product fees, application and participation fees: 32 CFR
    232.4(c)(1)(ii)-(iv)) paid at the start or financed are taken out of the amount advanced."""
    if not (math.isfinite(additional_charges) and additional_charges >= 0):
        raise LoanError(f"additional MAPR charges must be zero or positive, not {additional_charges!r}")
    apr = regz_apr(schedule, unit=unit)
    if additional_charges == 0:
        return MlaMapr(apr.apr, apr.apr, 0.0)
    first = schedule.advances[0]
    if additional_charges >= first.amount:
        raise LoanError(f"additional charges {additional_charges:,.2f} take the whole advance {first.amount:,.2f}")
    net = (CashFlow(first.date, first.amount - additional_charges, "advance"),) + schedule.advances[1:]
    mapr = regz_apr(dataclasses.replace(schedule, advances=net), unit=unit)
    return MlaMapr(mapr.apr, apr.apr, float(additional_charges))


# --- EU --------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class EuAprc:
    """2008/48/EC Annex I: the annual percentage rate of charge ``aprc`` (an effective annual rate)."""

    aprc: float
    basis: str

    def rounded(self, places: int = 1) -> float:
        """In percent, to ``places`` decimals (at least one, remark (d)), a 5 rounding up."""
        return round_half_up(self.aprc * 100, max(1, places))

    def as_dict(self) -> dict[str, object]:
        return {"rule": "Directive 2008/48/EC Annex I", "aprc": self.aprc, "basis": self.basis,
                "aprc_percent_1dp": self.rounded(1)}


def eu_aprc(schedule: Schedule, *, basis: YearBasis = "calendar") -> EuAprc:
    """The APRC of ``schedule``: drawdowns (net of charges paid at the start) against repayments and
    charges, times in years from the first drawdown on ``basis`` (``calendar``: 365/366-day years,
    ``months``: 12 equal months, ``days365``: days / 365)."""
    start = min(a.date for a in schedule.advances)
    flows = [(a.date, a.amount) for a in schedule.advances] + [(p.date, -p.amount) for p in schedule.payments]
    times = tuple(year_fraction(start, d, basis) for d, _ in flows)
    eq = CashFlowEquation(tuple(a for _, a in flows), times, (0.0,) * len(flows), "APRC")
    return EuAprc(solve_rate(eq), basis)


# --- plain rates -----------------------------------------------------------------------------------
def xirr(flows: Sequence[tuple[dt.date, float]], *, basis: YearBasis = "days365") -> float:
    """The effective annual rate of dated signed flows (XIRR's convention with ``days365``)."""
    if not flows:
        raise LoanError("IRR: give at least one cash flow")
    start = min(d for d, _ in flows)
    times = tuple(year_fraction(start, d, basis) for d, _ in flows)
    return solve_rate(CashFlowEquation(tuple(float(a) for _, a in flows), times, (0.0,) * len(flows), "IRR"))


def periodic_irr(amounts: Sequence[float]) -> float:
    """The IRR per period of signed flows one period apart (the first at time 0)."""
    n = len(amounts)
    return solve_rate(CashFlowEquation(tuple(float(a) for a in amounts), tuple(float(k) for k in range(n)),
                                       (0.0,) * n, "IRR"))
