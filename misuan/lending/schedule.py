"""Repayment schedules: dated cash flows (advances to the borrower, payments by the borrower) and the table rows.

A :class:`Schedule` is what every rate in :mod:`misuan.lending.rates` is computed from and what a
disclosure shows. The builders cover the common consumer-credit shapes:

- :func:`equal_instalment` (等额本息): level payments of principal and interest (annuity);
- :func:`equal_principal` (等额本金): level principal, interest on the falling balance;
- :func:`fee_instalment` (分期手续费): the principal in equal parts plus a fee per period charged on the
  *original* principal, as credit-card instalment plans do (their "monthly fee rate" is not an interest
  rate: the annualised rate is about twice as high, which is what PBoC Announcement [2021] No. 3 makes
  lenders show);
- :func:`interest_only` (先息后本) and :func:`bullet` (到期一次还本付息);
- :func:`level_payments`: given payments (as a loan contract or an advertisement states them);
- :func:`from_flows`: any dated advances and payments.

Every builder takes an ``upfront_fee`` deducted from the proceeds (the borrower receives ``principal -
upfront_fee``: PBoC's "principal actually occupied", Regulation Z's amount financed net of prepaid
finance charges), a ``periodic_fee`` added to each payment, a unit period (day, week, month, ... see
:class:`~misuan.lending.timing.UnitPeriod`) and an optional ``first_payment`` date: when it is not one
unit period after ``start``, the first period is odd and its interest is ``balance x ((1 + f r)(1 + r)^t
- 1)`` for the ``t`` full periods and fraction ``f`` of Appendix J (b)(5), so the actuarial rate of the
schedule is exactly the contract rate. Money is rounded to cents; the last payment absorbs the rounding.
The period rate of a nominal annual rate is ``annual_rate / periods per year`` (12, 52, 24, 365).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Iterable, Sequence
from typing import Literal

from misuan.lending.errors import LoanError
from misuan.lending.timing import UnitPeriod, add_months, appendix_j_time, infer_unit_period, semimonth_after

__all__ = [
    "METHODS",
    "CashFlow",
    "Row",
    "Schedule",
    "bullet",
    "equal_instalment",
    "equal_principal",
    "fee_instalment",
    "fixed_payment",
    "from_flows",
    "interest_only",
    "level_payments",
    "payment_dates",
    "periods_to_repay",
]

FlowKind = Literal["advance", "payment"]
METHODS: tuple[str, ...] = (
    "equal-instalment", "equal-principal", "fee-instalment", "interest-only", "bullet", "fixed-payment",
    "level-payments", "flows",
)
MAX_PERIODS = 3660  # ten years of daily payments; longer terms are refused as a likely input error


@dataclasses.dataclass(frozen=True)
class CashFlow:
    """Money that moves on ``date``: an ``advance`` to the borrower or a ``payment`` by the borrower (> 0)."""

    date: dt.date
    amount: float
    kind: FlowKind


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of the table. ``principal``/``interest`` are None where only the payment is known."""

    number: int
    date: dt.date
    payment: float
    principal: float | None
    interest: float | None
    fee: float
    balance: float | None


@dataclasses.dataclass(frozen=True)
class Schedule:
    """A loan's dated cash flows and its repayment table.

    ``principal`` is the face amount; ``upfront_fee`` is deducted from it at ``start``, so the advance
    is ``principal - upfront_fee``. ``annual_rate`` is the nominal contract rate (None for fee plans
    and given payments), ``fee_rate`` the per-period fee on the original principal of a fee plan.
    """

    method: str
    principal: float
    start: dt.date
    unit: UnitPeriod
    advances: tuple[CashFlow, ...]
    payments: tuple[CashFlow, ...]
    rows: tuple[Row, ...]
    upfront_fee: float = 0.0
    annual_rate: float | None = None
    fee_rate: float | None = None

    def __post_init__(self) -> None:
        if not self.advances:
            raise LoanError("a schedule needs at least one advance to the borrower")
        if not self.payments:
            raise LoanError("the schedule never repays: it has no payments")
        for f in self.advances + self.payments:
            if not (math.isfinite(f.amount) and f.amount > 0):
                raise LoanError(f"every {f.kind} must be a positive amount, not {f.amount!r} on {f.date}")
        first = min(f.date for f in self.advances)
        early = [p for p in self.payments if p.date < first]
        if early:
            raise LoanError(f"a payment on {early[0].date} comes before the first advance on {first}")
        repaid, advanced = self.total_repaid, self.amount_advanced
        if repaid < advanced - 0.005:
            raise LoanError(
                f"the schedule never repays: payments total {repaid:,.2f} but {advanced:,.2f} was advanced"
            )

    @property
    def amount_advanced(self) -> float:
        """What the borrower actually receives: the advances, net of fees deducted from them."""
        return math.fsum(a.amount for a in self.advances)

    @property
    def total_repaid(self) -> float:
        return math.fsum(p.amount for p in self.payments)

    @property
    def total_interest(self) -> float:
        return math.fsum(r.interest for r in self.rows if r.interest is not None)

    @property
    def total_fees(self) -> float:
        """Upfront fee plus every periodic or instalment fee."""
        return self.upfront_fee + math.fsum(r.fee for r in self.rows)

    @property
    def total_cost(self) -> float:
        """All the borrower pays beyond what it receives (interest and every fee): repaid - advanced."""
        return _cents(self.total_repaid - self.amount_advanced)

    @property
    def maturity(self) -> dt.date:
        return max(p.date for p in self.payments)

    def flows(self) -> list[tuple[dt.date, float]]:
        """(date, signed amount): advances positive, payments negative, in date order."""
        out = [(a.date, a.amount) for a in self.advances] + [(p.date, -p.amount) for p in self.payments]
        return sorted(out, key=lambda x: x[0])


# --- checks and rounding ---------------------------------------------------------------------------
def _cents(x: float) -> float:
    """Round half away from zero to cents (money, not banker's rounding)."""
    return math.copysign(math.floor(abs(x) * 100 + 0.5 + 1e-9) / 100, x)


def _check_loan(principal: float, n: int, upfront_fee: float, periodic_fee: float, rate: float | None) -> None:
    if isinstance(principal, bool) or not isinstance(principal, (int, float)) or not math.isfinite(principal):
        raise LoanError(f"principal must be a number, not {principal!r}")
    if principal <= 0:
        raise LoanError(f"principal must be positive, not {principal:,.2f}")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_PERIODS:
        raise LoanError(f"the number of payments must be an integer from 1 to {MAX_PERIODS}, not {n!r}")
    for name, fee in (("upfront fee", upfront_fee), ("periodic fee", periodic_fee)):
        if not (math.isfinite(fee) and fee >= 0):
            raise LoanError(f"{name} must be zero or positive, not {fee!r}")
    if upfront_fee >= principal:
        raise LoanError(f"the upfront fee {upfront_fee:,.2f} takes the whole principal {principal:,.2f}")
    if rate is not None and not (math.isfinite(rate) and 0 <= rate <= 100):
        raise LoanError(f"annual rate must be from 0 to 100 (10,000 %), not {rate!r}")


def _unit(unit: UnitPeriod | str) -> UnitPeriod:
    return unit if isinstance(unit, UnitPeriod) else UnitPeriod.parse(unit)


def _step(d: dt.date, unit: UnitPeriod, k: int) -> dt.date:
    if unit.kind == "month":
        return add_months(d, k * unit.count)
    if unit.kind == "year":
        return add_months(d, 12 * k * unit.count)
    if unit.kind == "semimonth":  # half a month: the 1st and 16th, the 15th and the month's end, ...
        forward = add_months(d, k // 2, month_end=False)
        return semimonth_after(forward) if k % 2 else forward
    days = 7 if unit.kind == "week" else 1
    return d + dt.timedelta(days=k * days * unit.count)


def payment_dates(start: dt.date, n: int, unit: UnitPeriod | str, first_payment: dt.date | None = None) -> list[dt.date]:
    """``n`` due dates one unit period apart, from ``first_payment`` (default: one period after ``start``)."""
    u = _unit(unit)
    first = first_payment or _step(start, u, 1)
    if first <= start:
        raise LoanError(f"the first payment ({first}) must come after the start of the loan ({start})")
    return [_step(first, u, k) for k in range(n)]


# --- builders --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Terms:
    principal: float
    start: dt.date
    unit: UnitPeriod
    dates: list[dt.date]
    first_factor: float  # (1 + f r)(1 + r)^t of the first period
    period_rate: float
    upfront_fee: float
    periodic_fee: float


def _terms(principal: float, annual_rate: float | None, n: int, unit: UnitPeriod | str, start: dt.date | None,
           first_payment: dt.date | None, upfront_fee: float, periodic_fee: float) -> _Terms:
    _check_loan(principal, n, upfront_fee, periodic_fee, annual_rate)
    u = _unit(unit)
    begin = start or dt.date.today()
    dates = payment_dates(begin, n, u, first_payment)
    r = (annual_rate or 0.0) / u.per_year
    t, f = appendix_j_time(begin, dates[0], u)
    return _Terms(float(principal), begin, u, dates, (1 + f * r) * (1 + r) ** t, r, float(upfront_fee), float(periodic_fee))


def _schedule(method: str, k: _Terms, rows: list[Row], annual_rate: float | None, fee_rate: float | None = None) -> Schedule:
    advances = (CashFlow(k.start, _cents(k.principal - k.upfront_fee), "advance"),)
    payments = tuple(CashFlow(r.date, r.payment, "payment") for r in rows)
    return Schedule(method, k.principal, k.start, k.unit, advances, payments, tuple(rows), k.upfront_fee,
                    annual_rate, fee_rate)


def _amortise(k: _Terms, principal_parts: Sequence[float | None], level: float | None = None) -> list[Row]:
    """Rows for a balance that accrues interest at the period rate (the first period at its odd factor).

    Each payment repays ``principal_parts[i]``, or (when it is None) whatever of ``level`` is left after
    interest; the last row repays the whole remaining balance.
    """
    rows: list[Row] = []
    balance = k.principal
    for i, d in enumerate(k.dates):
        factor = k.first_factor if i == 0 else 1 + k.period_rate
        interest = _cents(balance * (factor - 1))
        part = principal_parts[i]
        repaid = balance if i == len(k.dates) - 1 else part if part is not None else _cents((level or 0) - interest)
        repaid = min(max(repaid, 0.0), balance)
        balance = _cents(balance - repaid)
        fee = k.periodic_fee
        rows.append(Row(i + 1, d, _cents(repaid + interest + fee), _cents(repaid), interest, fee, balance))
    return rows


def equal_instalment(principal: float, annual_rate: float, n: int, *, unit: UnitPeriod | str = "month",
                     start: dt.date | None = None, first_payment: dt.date | None = None,
                     upfront_fee: float = 0.0, periodic_fee: float = 0.0) -> Schedule:
    """等额本息: the level payment ``P`` with ``principal = sum_k P / (F (1 + r)^k)``, ``F`` the first
    period's factor, so an odd first period changes the payment, not the rate."""
    k = _terms(principal, annual_rate, n, unit, start, first_payment, upfront_fee, periodic_fee)
    r = k.period_rate
    annuity = float(n) if r == 0 else (1 - (1 + r) ** -n) / r * (1 + r)
    level = _cents(k.principal * k.first_factor / annuity)
    return _schedule("equal-instalment", k, _amortise(k, [None] * n, level), annual_rate)


def equal_principal(principal: float, annual_rate: float, n: int, *, unit: UnitPeriod | str = "month",
                    start: dt.date | None = None, first_payment: dt.date | None = None,
                    upfront_fee: float = 0.0, periodic_fee: float = 0.0) -> Schedule:
    """等额本金: ``principal / n`` each period plus interest on the balance (the payments fall)."""
    k = _terms(principal, annual_rate, n, unit, start, first_payment, upfront_fee, periodic_fee)
    part = _cents(k.principal / n)
    return _schedule("equal-principal", k, _amortise(k, [part] * n), annual_rate)


def interest_only(principal: float, annual_rate: float, n: int, *, unit: UnitPeriod | str = "month",
                  start: dt.date | None = None, first_payment: dt.date | None = None,
                  upfront_fee: float = 0.0, periodic_fee: float = 0.0) -> Schedule:
    """先息后本: interest every period, the whole principal with the last payment."""
    k = _terms(principal, annual_rate, n, unit, start, first_payment, upfront_fee, periodic_fee)
    return _schedule("interest-only", k, _amortise(k, [0.0] * n), annual_rate)


def bullet(principal: float, annual_rate: float, n: int, *, unit: UnitPeriod | str = "month",
           start: dt.date | None = None, first_payment: dt.date | None = None,
           upfront_fee: float = 0.0, periodic_fee: float = 0.0) -> Schedule:
    """到期一次还本付息: one payment ``n`` periods after ``start`` (or on ``first_payment``) of the principal
    plus simple interest ``principal x r x (t + f)`` for the time to maturity in unit periods; a
    ``periodic_fee`` is charged once per period, with that payment."""
    k = _terms(principal, annual_rate, 1, unit, start, first_payment or _step(start or dt.date.today(), _unit(unit), n),
               upfront_fee, periodic_fee)
    t, f = appendix_j_time(k.start, k.dates[0], k.unit)
    interest = _cents(k.principal * k.period_rate * (t + f))
    fee = _cents(k.periodic_fee * max(1, t))
    rows = [Row(1, k.dates[0], _cents(k.principal + interest + fee), k.principal, interest, fee, 0.0)]
    return _schedule("bullet", k, rows, annual_rate)


def fee_instalment(principal: float, fee_rate: float, n: int, *, unit: UnitPeriod | str = "month",
                   start: dt.date | None = None, first_payment: dt.date | None = None,
                   upfront_fee: float = 0.0) -> Schedule:
    """分期手续费: each period repays ``principal / n`` and pays a fee of ``fee_rate x principal`` (the
    original principal, not the balance); no interest is charged as such."""
    if not (math.isfinite(fee_rate) and 0 <= fee_rate <= 1):
        raise LoanError(f"fee rate per period must be from 0 to 1 (100 %), not {fee_rate!r}")
    k = _terms(principal, 0.0, n, unit, start, first_payment, upfront_fee, _cents(principal * fee_rate))
    part = _cents(k.principal / n)
    return _schedule("fee-instalment", k, _amortise(k, [part] * n), None, fee_rate)


def fixed_payment(principal: float, annual_rate: float, payment: float, *, unit: UnitPeriod | str = "month",
                  start: dt.date | None = None, first_payment: dt.date | None = None,
                  upfront_fee: float = 0.0, periodic_fee: float = 0.0) -> Schedule:
    """Level payments of ``payment`` (plus ``periodic_fee``) at ``annual_rate`` until the loan is repaid,
    the last one smaller; refuses a payment that never repays the loan (:func:`periods_to_repay`)."""
    n = periods_to_repay(principal, annual_rate, payment, unit)
    k = _terms(principal, annual_rate, n, unit, start, first_payment, upfront_fee, periodic_fee)
    if k.principal * (k.first_factor - 1) >= payment:
        raise LoanError(f"a payment of {payment:,.2f} does not cover the first period's interest: the loan never repays")
    return _schedule("fixed-payment", k, _amortise(k, [None] * n, float(payment)), annual_rate)


def level_payments(principal: float, payment: float, n: int, *, unit: UnitPeriod | str = "month",
                   start: dt.date | None = None, first_payment: dt.date | None = None,
                   upfront_fee: float = 0.0, last_payment: float | None = None) -> Schedule:
    """``n`` payments of ``payment`` (the last one ``last_payment`` if given), as a contract states them;
    the split into principal and interest is not known, so the rows carry only the payments."""
    _check_loan(principal, n, upfront_fee, 0.0, None)
    if not (math.isfinite(payment) and payment > 0):
        raise LoanError(f"payment must be positive, not {payment!r}")
    k = _terms(principal, None, n, unit, start, first_payment, upfront_fee, 0.0)
    amounts = [float(payment)] * n
    if last_payment is not None:
        amounts[-1] = float(last_payment)
    rows = [Row(i + 1, d, a, None, None, 0.0, None) for i, (d, a) in enumerate(zip(k.dates, amounts, strict=True))]
    return _schedule("level-payments", k, rows, None)


def from_flows(flows: Iterable[CashFlow], *, unit: UnitPeriod | str | None = None, principal: float | None = None,
               upfront_fee: float = 0.0) -> Schedule:
    """A schedule of any dated advances and payments (several advances, irregular dates or amounts).

    ``principal`` defaults to the advances plus ``upfront_fee``; ``unit`` to the most frequent interval
    between payments (Appendix J (b)(4)).
    """
    items = sorted(flows, key=lambda f: (f.date, f.kind != "advance"))
    advances = tuple(f for f in items if f.kind == "advance")
    payments = tuple(f for f in items if f.kind == "payment")
    other = [f.kind for f in items if f.kind not in ("advance", "payment")]
    if other:
        raise LoanError(f"a cash flow kind must be 'advance' or 'payment', not {other[0]!r}")
    if not payments:
        raise LoanError("the schedule never repays: it has no payments")
    if not advances:
        raise LoanError("a schedule needs at least one advance to the borrower")
    u = _unit(unit) if unit is not None else (
        infer_unit_period([p.date for p in payments]) if len({p.date for p in payments}) > 1 else UnitPeriod("day"))
    rows = tuple(Row(i + 1, p.date, p.amount, None, None, 0.0, None) for i, p in enumerate(payments))
    face = principal if principal is not None else math.fsum(a.amount for a in advances) + upfront_fee
    return Schedule("flows", face, advances[0].date, u, advances, payments, rows, upfront_fee)


def periods_to_repay(principal: float, annual_rate: float, payment: float, unit: UnitPeriod | str = "month") -> int:
    """How many level payments of ``payment`` repay ``principal`` at ``annual_rate``; refuses a payment
    that does not cover a period's interest (the loan would never be repaid)."""
    _check_loan(principal, 1, 0.0, 0.0, annual_rate)
    r = annual_rate / _unit(unit).per_year
    interest = principal * r
    if not (math.isfinite(payment) and payment > interest):
        raise LoanError(
            f"a payment of {payment:,.2f} does not cover the {interest:,.2f} interest of a period: the loan never repays"
        )
    n = principal / payment if r == 0 else -math.log(1 - principal * r / payment) / math.log(1 + r)
    periods = math.ceil(n - 1e-9)
    if periods > MAX_PERIODS:
        raise LoanError(f"a payment of {payment:,.2f} takes {periods} periods to repay: more than {MAX_PERIODS}")
    return periods
