"""The bracketed rate solver: exact on known rates, refuses instead of guessing, agrees with pyxirr."""

from __future__ import annotations

import datetime as dt
import math
import time

import numpy as np
import pytest

from misuan.errors import DataError
from misuan.lending.rates import periodic_irr, xirr
from misuan.lending.rootfind import CashFlowEquation, NoRateError, SeveralRatesError, solve_rate

pyxirr = pytest.importorskip("pyxirr")


def _periodic(amounts: list[float]) -> CashFlowEquation:
    n = len(amounts)
    return CashFlowEquation(tuple(amounts), tuple(float(k) for k in range(n)), (0.0,) * n, "test rate")


def test_pboc_example_monthly_irr() -> None:
    # PBoC Announcement [2021] No. 3: 99,000 received, 12 x 8,833.30 -> 1.06698 % a month
    r = solve_rate(_periodic([99000.0] + [-8833.30] * 12))
    assert r == pytest.approx(0.0106698, abs=5e-8)


def test_zero_rate_is_found_exactly() -> None:
    assert solve_rate(_periodic([1200.0] + [-100.0] * 12)) == 0.0


@pytest.mark.parametrize("rate", [-0.95, -0.3, -1e-4, 1e-6, 0.05, 2.0, 50.0, 5000.0])
def test_extreme_but_real_rates_are_found(rate: float) -> None:
    pays = [-100.0] * 6
    advance = sum(100.0 / (1 + rate) ** k for k in range(1, 7))
    r = solve_rate(_periodic([advance] + pays))
    assert r == pytest.approx(rate, rel=1e-9)


def test_no_rate_is_one_clear_error() -> None:
    with pytest.raises(NoRateError, match="only advances or only payments") as exc:
        solve_rate(_periodic([100.0, 230.0, 132.0]))
    assert "\n" not in str(exc.value) and isinstance(exc.value, DataError) and exc.value.exit_code == 3
    with pytest.raises(NoRateError, match="no rate between"):
        solve_rate(_periodic([100.0, -1e20]))  # would need a rate far beyond 10^14 % a period
    with pytest.raises(NoRateError, match="every cash flow is zero"):
        solve_rate(_periodic([0.0, 0.0]))


def test_two_roots_are_refused_where_pyxirr_returns_one_silently() -> None:
    flows = [-100.0, 230.0, -132.0]  # roots 10 % and 20 %
    assert pyxirr.irr(flows) == pytest.approx(0.2)  # one of them, without a word
    with pytest.raises(SeveralRatesError, match="2 rates per period") as exc:
        solve_rate(_periodic(flows))
    assert "10.000000%" in str(exc.value) and "20.000000%" in str(exc.value)


def test_bad_inputs_never_reach_the_solver() -> None:
    with pytest.raises(DataError, match="finite"):
        CashFlowEquation((1.0, math.nan), (0.0, 1.0), (0.0, 0.0))
    with pytest.raises(DataError, match="fractions in"):
        CashFlowEquation((1.0, -2.0), (0.0, 1.0), (0.0, 1.0))
    with pytest.raises(DataError, match="as many times"):
        CashFlowEquation((1.0, -2.0), (0.0,), (0.0,))


def test_long_daily_schedules_do_not_overflow() -> None:
    # 3,650 daily periods: (1 + i)^t overflows a double for large i; the log-space form does not
    n = 3650
    amounts = [1000.0] + [-0.5] * n
    eq = CashFlowEquation(tuple(amounts), tuple(float(k) for k in range(n + 1)), (0.0,) * (n + 1))
    r = solve_rate(eq)
    assert math.isfinite(r) and r > 0
    assert abs(sum(a / (1 + r) ** t for a, t in zip(amounts, eq.times, strict=True))) < 1e-6


def _random_dated(rng: np.random.Generator) -> tuple[list[dt.date], list[float], float]:
    """An advance and 1-60 payments on random later dates, priced at a known annual rate."""
    start = dt.date(2000, 1, 1) + dt.timedelta(days=int(rng.integers(0, 9000)))
    n = int(rng.integers(1, 61))
    gaps = rng.integers(1, 62, size=n)
    dates = [start] + [start + dt.timedelta(days=int(d)) for d in np.cumsum(gaps)]
    pays = rng.uniform(10, 5000, size=n)
    annual = float(rng.choice([rng.uniform(-0.5, 0.0), rng.uniform(0.0, 0.6), rng.uniform(0.6, 20.0)]))
    advance = sum(p / (1 + annual) ** ((d - start).days / 365) for p, d in zip(pays, dates[1:], strict=True))
    return dates, [float(advance)] + [-float(p) for p in pays], annual


def test_agrees_with_pyxirr_on_thousands_of_random_schedules() -> None:
    rng = np.random.default_rng(20260313)
    began = time.perf_counter()
    checked = 0
    for _ in range(2000):
        dates, amounts, annual = _random_dated(rng)
        ours = xirr(list(zip(dates, amounts, strict=True)), basis="days365")
        theirs = pyxirr.xirr(dates, amounts)
        assert ours == pytest.approx(annual, rel=1e-7, abs=1e-9)
        if theirs is not None and math.isfinite(theirs):
            assert ours == pytest.approx(theirs, rel=1e-6, abs=1e-8), (dates, amounts)
            checked += 1
        # the periodic form on the same amounts
        mine = periodic_irr(amounts)
        assert mine == pytest.approx(pyxirr.irr(amounts), rel=1e-6, abs=1e-8)
    assert checked >= 1900  # pyxirr itself gives up on a few of the extreme ones
    assert time.perf_counter() - began < 60
