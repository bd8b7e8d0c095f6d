"""Horizontal logistic regression: lenders with the same features on different customers fit one
model, each seeing only its own rows, over secure aggregation (:mod:`misuan.protocols.secagg`).

Newton's method (IRLS) on the pooled, L2-penalised log-likelihood, as scikit-learn's
``LogisticRegression(C=...)`` defines it (the intercept not penalised):
at each iteration every data party computes, on its rows, the gradient ``X^T (p - y)``, the
Hessian ``X^T diag(p (1 - p)) X`` and its log-loss at the current weights; one aggregation round adds
them up; every party (the aggregator too) takes the same Newton step from the same sums, so all hold
the same weights without sending them. Newton converges in a handful of rounds (each a few hundred
to a few thousand numbers: ``d + 1`` gradient entries and ``(d + 1)^2`` Hessian entries), which
matters more than the per-round cost when every round is four network round trips.

**What is revealed** (beyond secure aggregation's own catalogue, per round): the *sums* over all
surviving parties of the gradient, the Hessian and the log-loss at the current weights, and the row
count, to the aggregator and to every data party (they need them for the step). Together with the
final weights they are the pooled model's training statistics; no party's own rows, counts or
gradients are revealed (with three or more parties, and the aggregator colluding with fewer than the
threshold). The first round's Hessian at ``w = 0`` is ``X^T X / 4`` of the pooled data: the pooled
second moments of the features, which is what a pooled scorecard would show its validator anyway.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from misuan.errors import ConfigError
from misuan.ml.horizontal_rounds import FitRounds, checked_rows
from misuan.net.channel import Channel

__all__ = ["HorizontalLRResult", "fit_as_aggregator", "fit_as_data_party", "newton_step"]

_GRID = 2.0**40  # weights are kept on this grid (see _fit)
# ``tol`` (largest change of a weight in a step, default 1e-6) stays above the steps that the
# fixed-point rounding of the sums alone would cause (about 2^-20 per party and entry, divided by the
# Hessian's scale, the row count times a variance): Newton gets there in 5-10 rounds.


@dataclasses.dataclass
class HorizontalLRResult:
    """The model every party ends with (identical everywhere) and how it got there."""

    coef: np.ndarray  # (d,)
    intercept: float
    n_rows: int  # pooled rows of the contributors of the last round
    iterations: int  # aggregation rounds
    loss: list[float]  # pooled mean log-loss (penalty included) at each round's weights
    contributors: list[str]  # the data parties whose rows it was fitted on

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(np.asarray(x, dtype=np.float64) @ self.coef + self.intercept)))


def _local_sums(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """[gradient (d+1), Hessian ((d+1)^2), log-loss, rows] of this party at weights ``w`` (intercept last)."""
    xa = np.hstack([x, np.ones((x.shape[0], 1))])
    z = xa @ w
    p = 1.0 / (1.0 + np.exp(-z))
    grad = xa.T @ (p - y)
    hess = (xa * (p * (1.0 - p))[:, None]).T @ xa
    loss = float(np.sum(np.logaddexp(0.0, z) - y * z))
    return np.concatenate([grad, hess.reshape(-1), [loss, float(x.shape[0])]])


def newton_step(total: np.ndarray, w: np.ndarray, c: float) -> tuple[np.ndarray, float, int]:
    """The next weights from the aggregated sums, the penalised mean loss at ``w``, the pooled rows.
    Deterministic: every party computes the same from the same sums."""
    k = w.size
    grad, hess = total[:k].copy(), total[k : k + k * k].reshape(k, k).copy()
    loss, n = float(total[k + k * k]), int(round(total[k + k * k + 1]))
    penalty = np.ones(k) / c
    penalty[-1] = 0.0  # the intercept is not penalised (as in scikit-learn)
    grad += penalty * w
    hess[np.diag_indices(k)] += penalty
    step = np.linalg.solve(hess, grad)
    return w - step, (loss + 0.5 * float(np.sum(penalty * w * w))) / max(n, 1), n


def _context(n_features: int, c: float, max_iter: int, tol: float) -> str:
    return f"horizontal-lr v1 features={n_features} C={c!r} max_iter={max_iter} tol={tol!r}"


def _fit(rounds: FitRounds, x: np.ndarray, y: np.ndarray, c: float, max_iter: int, tol: float) -> HorizontalLRResult:
    """Newton's method, the same at every party (the aggregator's ``x`` has no rows)."""
    if c <= 0 or max_iter < 1:
        raise ConfigError(f"C must be positive and max_iter at least 1 (got C={c}, max_iter={max_iter})")
    w = np.zeros(x.shape[1] + 1)
    losses: list[float] = []
    n = 0
    for _ in range(max_iter):
        total = rounds(functools.partial(_local_sums, x, y, w))
        w_next, loss, n = newton_step(total, w, c)
        # on a grid of 2^-40: parties on other CPUs or BLAS builds may differ in the last bits of the
        # step; rounded, they hold the same weights and stop at the same round (a tie on the grid's
        # midpoint aside)
        w_next = np.round(w_next * _GRID) / _GRID
        losses.append(loss)
        done = float(np.max(np.abs(w_next - w))) < tol
        w = w_next
        if done:
            break
    return HorizontalLRResult(w[:-1], float(w[-1]), n, rounds.rounds, losses, list(rounds.contributors or []))


def fit_as_data_party(
    chan: Channel, x: np.ndarray, y: np.ndarray, *, aggregator: str, data_parties: list[str], c: float = 1.0,
    max_iter: int = 30, tol: float = 1e-6, round_timeout_s: float = 60.0, step: str = "hlr",
) -> HorizontalLRResult:
    """Fit as one of ``data_parties`` on its own rows ``x`` (features) and ``y`` (0/1 labels)."""
    xa, ya = checked_rows(x, y, missing=False)
    rounds = FitRounds(chan, aggregator=aggregator, data_parties=data_parties, step=step,
                       context=_context(xa.shape[1], c, max_iter, tol), round_timeout_s=round_timeout_s)
    return _fit(rounds, xa, ya, c, max_iter, tol)


def fit_as_aggregator(
    chan: Channel, n_features: int, *, data_parties: list[str], c: float = 1.0, max_iter: int = 30, tol: float = 1e-6,
    round_timeout_s: float = 60.0, step: str = "hlr",
) -> HorizontalLRResult:
    """Aggregate every round of the fit (the aggregator holds no rows; it follows the same steps)."""
    rounds = FitRounds(chan, aggregator=chan.party, data_parties=data_parties, step=step,
                       context=_context(n_features, c, max_iter, tol), round_timeout_s=round_timeout_s)
    return _fit(rounds, np.empty((0, n_features)), np.empty(0), c, max_iter, tol)
