"""Time between a loan's cash flows, as each rule measures it.

- **Unit periods** (US Regulation Z, 12 CFR 1026 Appendix J (b)(3)-(b)(5)): a flow's time from the start
  of the term is ``t`` full unit periods plus a fraction ``f`` of one. Full periods are counted back from
  the flow's date; all months are equal (a month runs from a date to the same date of another month, or
  month end to month end); the odd days left at the start are divided by 30 for monthly unit periods
  (by 30 x months for multi-month ones: a quarter is 90 days), by 15 for a semimonth, by 7 x weeks for
  weekly ones and by 365 for a year. The same counting serves the PBoC annualised rate of a schedule,
  whose IRR is per repayment period.
- **Year fractions** (EU Consumer Credit Directive 2008/48/EC, Annex I, remark (c)): intervals in years
  and fractions of a year, a year being 365 days (366 in leap years), 52 weeks or 12 equal months of
  30.41666 days. ``calendar`` counts whole years forward from the first drawdown and divides the rest by
  the length (365 or 366 days) of the year it falls in; ``months`` counts whole months and divides the
  rest by 365/12 days; ``days365`` is days / 365 (the convention of XIRR).
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
import itertools
from collections import Counter
from collections.abc import Sequence
from typing import Literal

from misuan.errors import ConfigError
from misuan.lending.errors import LoanError

__all__ = [
    "UNIT_KINDS",
    "YEAR_BASES",
    "UnitPeriod",
    "YearBasis",
    "add_months",
    "appendix_j_time",
    "infer_unit_period",
    "semimonth_after",
    "year_fraction",
]

UnitKind = Literal["day", "week", "semimonth", "month", "year"]
UNIT_KINDS: tuple[str, ...] = ("day", "week", "semimonth", "month", "year")
YearBasis = Literal["calendar", "months", "days365"]
YEAR_BASES: tuple[str, ...] = ("calendar", "months", "days365")
_ALIASES = {"quarter": ("month", 3), "fortnight": ("week", 2), "biweek": ("week", 2), "annual": ("year", 1)}


@dataclasses.dataclass(frozen=True)
class UnitPeriod:
    """A standard interval of time (Appendix J (b)(3)(iii)): ``count`` days, weeks, months or years, or a semimonth."""

    kind: UnitKind
    count: int = 1

    def __post_init__(self) -> None:
        if self.kind not in UNIT_KINDS:
            raise ConfigError(f"unit period {self.kind!r}: must be one of {', '.join(UNIT_KINDS)}")
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise ConfigError(f"unit period {self.kind}: count must be a positive integer, not {self.count!r}")
        if self.kind == "semimonth" and self.count != 1:
            raise ConfigError("unit period semimonth: use month for longer periods")

    @property
    def per_year(self) -> float:
        """Unit periods in a year (Appendix J (b)(6)): 12/k for k months, 52/k for k weeks, 24, 365/k, 1/k."""
        base = {"day": 365.0, "week": 52.0, "semimonth": 24.0, "month": 12.0, "year": 1.0}[self.kind]
        return base / self.count

    @property
    def label(self) -> str:
        return self.kind if self.count == 1 else f"{self.count} {self.kind}s"

    @classmethod
    def parse(cls, text: str) -> UnitPeriod:
        """``month``, ``3month``/``quarter``, ``2week``/``fortnight``, ``semimonth``, ``day``, ``year``."""
        raw = text.strip().lower().replace(" ", "").replace("-", "")
        if raw in _ALIASES:
            kind, count = _ALIASES[raw]
            return cls(kind, count)  # type: ignore[arg-type]
        digits = "".join(ch for ch in raw if ch.isdigit())
        kind = raw[len(digits):].removesuffix("s") if raw.startswith(digits) else raw
        if kind not in UNIT_KINDS or (digits and not raw.startswith(digits)):
            raise ConfigError(f"unit period {text!r}: write day, week, 2week, semimonth, month, 3month or year")
        return cls(kind, int(digits) if digits else 1)  # type: ignore[arg-type]


def _month_end(d: dt.date) -> bool:
    return d.day == calendar.monthrange(d.year, d.month)[1]


def add_months(d: dt.date, months: int, *, month_end: bool | None = None) -> dt.date:
    """``d`` moved by whole months (Appendix J (b)(3)(iv)): same day of month, clipped to the month's
    length (the 30th becomes the last day of February); month end stays month end when ``month_end``
    (default: when ``d`` is a month end)."""
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    last = calendar.monthrange(year, month)[1]
    if month_end if month_end is not None else _month_end(d):
        return dt.date(year, month, last)
    return dt.date(year, month, min(d.day, last))


def semimonth_after(d: dt.date) -> dt.date:
    """Half a month after ``d``: the 1st -> the 16th -> the 1st of the next month; the 15th -> the month's
    end (or 30th) -> the 15th; a day after the 15th goes to the next month, 15 days earlier in the month."""
    if d.day <= 15:
        return d.replace(day=min(d.day + 15, calendar.monthrange(d.year, d.month)[1]))
    return add_months(d, 1, month_end=False).replace(day=d.day - 15)


def _semimonths_back(d: dt.date, k: int) -> dt.date:
    back = add_months(d, -(k // 2))
    if k % 2 == 0:
        return back
    if back.day > 15:
        return back - dt.timedelta(days=15)
    prev = add_months(back, -1, month_end=False)
    return prev.replace(day=min(back.day + 15, calendar.monthrange(prev.year, prev.month)[1]))


def _step_back(when: dt.date, unit: UnitPeriod, k: int) -> dt.date:
    if unit.kind == "month":
        return add_months(when, -k * unit.count)
    if unit.kind == "year":
        return add_months(when, -12 * k * unit.count)
    if unit.kind == "semimonth":
        return _semimonths_back(when, k)
    days = 7 if unit.kind == "week" else 1
    return when - dt.timedelta(days=k * days * unit.count)


def appendix_j_time(start: dt.date, when: dt.date, unit: UnitPeriod) -> tuple[int, float]:
    """(t, f): full unit periods from ``start`` to ``when``, counted back from ``when``, and the fraction
    of a unit period left over (12 CFR 1026 Appendix J (b)(5)(i)-(iv))."""
    if when < start:
        raise LoanError(f"a cash flow on {when} comes before the start of the term {start}")
    if unit.kind in ("day", "week"):
        size = unit.count * (7 if unit.kind == "week" else 1)
        t, rest = divmod((when - start).days, size)
        return t, rest / size
    t = 0
    while _step_back(when, unit, t + 1) >= start:
        t += 1
    anchor = _step_back(when, unit, t)
    if anchor == start:
        return t, 0.0
    if unit.kind == "semimonth":
        return t, (anchor - start).days / 15
    if unit.kind == "year":
        return t, (anchor - start).days / (365 * unit.count)
    months = 0
    while add_months(anchor, -(months + 1)) >= start:
        months += 1
    days = (add_months(anchor, -months) - start).days
    return t, (months + days / 30) / unit.count


def _interval(a: dt.date, b: dt.date) -> UnitPeriod:
    days = (b - a).days
    for months in range(1, 13):
        if add_months(a, months) == b or (_month_end(a) and _month_end(b) and add_months(a, months, month_end=True) == b):
            return UnitPeriod("year") if months == 12 else UnitPeriod("month", months)
    if semimonth_after(a) == b:
        return UnitPeriod("semimonth")
    if days % 7 == 0:
        return UnitPeriod("week", days // 7)
    return UnitPeriod("day", days)


def _length_days(u: UnitPeriod) -> float:
    return {"day": 1.0, "week": 7.0, "semimonth": 15.0, "month": 30.0, "year": 365.0}[u.kind] * u.count


def infer_unit_period(payment_dates: Sequence[dt.date]) -> UnitPeriod:
    """The common period that occurs most often between payments (Appendix J (b)(4)(i)); of equally
    frequent ones, the shortest ((b)(4)(i)(A)); with no common period, the shortest period."""
    dates = sorted(set(payment_dates))
    if len(dates) < 2:
        raise ConfigError("one payment date gives no unit period: say which one (e.g. unit='month')")
    counts = Counter(_interval(a, b) for a, b in itertools.pairwise(dates))
    best = max(counts.values())
    common = [u for u, n in counts.items() if n == best] if best > 1 else list(counts)
    return min(common, key=_length_days)


def year_fraction(start: dt.date, when: dt.date, basis: YearBasis = "calendar") -> float:
    """Years from ``start`` to ``when`` under the EU APRC conventions (2008/48/EC Annex I, remark (c))."""
    if basis not in YEAR_BASES:
        raise ConfigError(f"year basis {basis!r}: must be one of {', '.join(YEAR_BASES)}")
    if when < start:
        raise LoanError(f"a cash flow on {when} comes before the first drawdown {start}")
    if basis == "days365":
        return (when - start).days / 365
    if basis == "months":
        months = 0
        while add_months(start, months + 1, month_end=False) <= when:
            months += 1
        rest = (when - add_months(start, months, month_end=False)).days
        return (months + rest / (365 / 12)) / 12
    years = 0
    while add_months(start, 12 * (years + 1), month_end=False) <= when:
        years += 1
    anchor = add_months(start, 12 * years, month_end=False)
    year_days = (add_months(start, 12 * (years + 1), month_end=False) - anchor).days
    return years + (when - anchor).days / year_days
