"""The rate that makes a loan's cash flows balance, found by bracketing: never a silent NaN, never a wrong root.

Every rate in this package (PBoC annualised rate, Regulation Z APR, MLA MAPR, EU APRC, a plain IRR) is
the root ``i`` of one equation of the same shape,

    sum_k a_k / ((1 + f_k i) (1 + i)^t_k) = 0,

where ``a_k`` is a signed cash flow (advances to the borrower positive, payments by the borrower
negative), ``t_k`` its time in whole unit periods (or years) and ``f_k`` a fractional unit period
discounted by simple interest (Regulation Z Appendix J, (b)(8); zero for the EU and plain IRR forms).

Newton's method and ``numpy_financial.rate`` can return a root of the wrong sign, a root far from the
economic one, or NaN when the iteration leaves the domain ``i > -1``. Here the equation is first
evaluated on a fixed grid of rates from -99.9 % to 10^14 % per unit period; each sign change brackets a
root, which Brent's method then narrows to machine precision. No bracket means no rate solves the
equation, and more than one means several do (flows that change direction more than once): both
raise :class:`~misuan.errors.DataError` with one line that says which, instead of returning a number.

The equation is evaluated in log space and scaled by its largest term, so neither ``(1 + i)^t``
overflowing nor underflowing changes the sign it reports.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Iterable

import numpy as np

from misuan.lending.errors import LoanError

__all__ = ["CashFlowEquation", "NoRateError", "SeveralRatesError", "solve_rate"]

# per-unit-period rates at which the equation is evaluated to find brackets: dense near zero, where
# loan rates live, and reaching -99.9 % and 10^14 % so that extreme but real rates (the APRC of a
# one-week loan costing 30 % is about 8.5 x 10^7 %) are still found
_NEG = -np.geomspace(1e-6, 0.999, 60)[::-1]
_POS = np.geomspace(1e-7, 1e12, 220)
GRID: np.ndarray = np.concatenate([_NEG, [0.0], _POS])
_XTOL = 1e-15
_MAX_ITER = 200


class NoRateError(LoanError):
    help = "no interest rate makes these cash flows balance: check the amounts, their signs and dates"


class SeveralRatesError(LoanError):
    help = "several interest rates balance these cash flows: the flows change direction more than once"


@dataclasses.dataclass(frozen=True)
class CashFlowEquation:
    """``sum a_k / ((1 + f_k i) (1 + i)^t_k) = 0`` for signed amounts ``a``, times ``t`` and fractions ``f``.

    Amounts on the same (t, f) are kept apart; that does not change the equation. ``what`` names the
    rate in error messages ("APR", "monthly IRR").
    """

    amounts: tuple[float, ...]
    times: tuple[float, ...]
    fractions: tuple[float, ...]
    what: str = "rate"

    def __post_init__(self) -> None:
        n = len(self.amounts)
        if n == 0 or len(self.times) != n or len(self.fractions) != n:
            raise LoanError(f"{self.what}: give as many times and fractions as amounts, and at least one")
        for name, values in (("amount", self.amounts), ("time", self.times), ("fraction", self.fractions)):
            bad = [v for v in values if not math.isfinite(v)]
            if bad:
                raise LoanError(f"{self.what}: every {name} must be a finite number, not {bad[0]!r}")
        if any(t < 0 for t in self.times) or any(not 0 <= f < 1 for f in self.fractions):
            raise LoanError(f"{self.what}: times must be >= 0 and fractions in [0, 1)")

    def terms(self, rate: float) -> np.ndarray:
        """Each flow's discounted amount at ``rate``, divided by the largest discount factor."""
        t = np.asarray(self.times)
        log_disc = -t * np.log1p(rate) - np.log1p(np.asarray(self.fractions) * rate)
        out: np.ndarray = np.asarray(self.amounts) * np.exp(log_disc - log_disc.max())
        return out

    def scaled(self, rates: np.ndarray) -> np.ndarray:
        """The equation's left side at each rate, divided by its largest discount factor (same sign)."""
        i = np.asarray(rates, dtype=float)[..., None]
        log_disc = -np.asarray(self.times) * np.log1p(i) - np.log1p(np.asarray(self.fractions) * i)
        log_disc = log_disc - log_disc.max(axis=-1, keepdims=True)
        out: np.ndarray = (np.asarray(self.amounts) * np.exp(log_disc)).sum(axis=-1)
        return out


def _brackets(eq: CashFlowEquation) -> list[tuple[float, float]]:
    """Intervals of the grid on which the equation changes sign, and grid points where it is exactly zero."""
    signs = np.sign(eq.scaled(GRID))
    if not np.isfinite(signs).all():  # cannot happen in log space; refuse rather than guess
        raise LoanError(f"{eq.what}: the equation could not be evaluated on the rate grid (please report it)")
    zeros = [float(x) for x, s in zip(GRID, signs, strict=True) if s == 0]
    nonzero = [(float(x), s) for x, s in zip(GRID, signs, strict=True) if s != 0]
    out = [(z, z) for z in zeros]
    for (x0, s0), (x1, s1) in itertools.pairwise(nonzero):
        if s0 != s1 and not any(x0 < z < x1 for z in zeros):
            out.append((x0, x1))
    return out


def _brent(eq: CashFlowEquation, a: float, b: float) -> float:
    """Brent's method on a bracket [a, b] with a sign change (R. P. Brent, Algorithms for Minimization
    without Derivatives, 1973, ch. 4): inverse quadratic interpolation, falling back to bisection."""

    def g(x: float) -> float:
        return float(eq.scaled(np.array([x]))[0])

    fa, fb = g(a), g(b)
    if fa == 0:
        return a
    if fb == 0:
        return b
    c, fc, d = a, fa, b - a
    e = d
    for _ in range(_MAX_ITER):
        if (fb > 0) == (fc > 0):
            c, fc, d = a, fa, b - a
            e = d
        if abs(fc) < abs(fb):
            a, b, c = b, c, b
            fa, fb, fc = fb, fc, fb
        tol = 2 * np.finfo(float).eps * abs(b) + _XTOL / 2
        m = (c - b) / 2
        if abs(m) <= tol or fb == 0:
            return b
        if abs(e) >= tol and abs(fa) > abs(fb):
            s = fb / fa
            if a == c:
                p, q = 2 * m * s, 1 - s
            else:
                q_, r = fa / fc, fb / fc
                p = s * (2 * m * q_ * (q_ - r) - (b - a) * (r - 1))
                q = (q_ - 1) * (r - 1) * (s - 1)
            if p > 0:
                q = -q
            p = abs(p)
            if 2 * p < min(3 * m * q - abs(tol * q), abs(e * q)):
                e, d = d, p / q
            else:
                d = e = m
        else:
            d = e = m
        a, fa = b, fb
        b += d if abs(d) > tol else math.copysign(tol, m)
        fb = g(b)
    raise LoanError(f"{eq.what}: the root finder did not converge in {_MAX_ITER} steps (a bug: please report it)")


def _direction_changes(eq: CashFlowEquation) -> int:
    order = sorted(range(len(eq.amounts)), key=lambda k: (eq.times[k], eq.fractions[k]))
    signs = [math.copysign(1, eq.amounts[k]) for k in order if eq.amounts[k] != 0]
    return sum(1 for x, y in itertools.pairwise(signs) if x != y)


def solve_rate(eq: CashFlowEquation) -> float:
    """The one rate per unit period (> -1) that solves ``eq``; raises when there is none or several.

    The result is checked: its discounted flows must cancel to within 1e-9 of their absolute sum.
    """
    amounts = [a for a in eq.amounts if a != 0]
    if not amounts:
        raise NoRateError(f"{eq.what}: every cash flow is zero, so no rate is defined")
    if all(a > 0 for a in amounts) or all(a < 0 for a in amounts):
        raise NoRateError(
            f"{eq.what}: every cash flow goes the same way (only advances or only payments), so no rate balances them"
        )
    brackets = _brackets(eq)
    if not brackets:
        raise NoRateError(
            f"{eq.what}: no rate between -99.9 % and 10^14 % per period balances the advances against the payments "
            f"(advances {_money(a for a in eq.amounts if a > 0)}, payments {_money(-a for a in eq.amounts if a < 0)})"
        )
    roots: list[float] = []
    for r in sorted(_brent(eq, a, b) for a, b in brackets):
        if not roots or abs(r - roots[-1]) > 1e-9 * max(1.0, abs(r)):
            roots.append(r)
    if len(roots) > 1:
        shown = ", ".join(f"{r:.6%}" for r in roots[:4])
        raise SeveralRatesError(
            f"{eq.what}: {len(roots)} rates per period balance these flows ({shown}); the flows change direction "
            f"{_direction_changes(eq)} times, so no single rate describes them"
        )
    root = roots[0]
    terms = eq.terms(root)
    residual = abs(float(terms.sum())) / float(np.abs(terms).sum())
    if not math.isfinite(root) or not residual <= 1e-9:
        raise LoanError(f"{eq.what}: the solution {root!r} leaves a relative residual {residual!r}: please report it")
    return root


def _money(values: Iterable[float]) -> str:
    return f"{math.fsum(values):,.2f}"
