"""L-BFGS over shared vectors, run in lockstep by both parties: the same public scalars, the same steps.

Each party drives this loop with its own :class:`Ops` (its view of every vector and its side of
every exchange). L-BFGS's two-loop recursion needs, per iteration, the inner products of the kept
``s_k`` with the gradient, of the kept ``y_k`` (and the gradient) with the preconditioned vector,
and of the new step with the kept ``y_k``; the rest follows from those and from kept ``<s_i, y_j>``,
so each iteration opens three batches of at most ``memory + 1`` scalars. The unit step is taken;
the log loss is tracked by the trapezoid rule, ``L(w + s) - L(w) ~ (<s, g(w)> + <s, g(w + s)>) / 2``,
from inner products the recursion opens anyway.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

from misuan.protocols.vertical_lr.shared_vectors import Shared

__all__ = ["LbfgsTrace", "Ops", "run_lbfgs"]


class Ops(Protocol):
    first: bool  # the bank: the first party of every share truncation and exchange

    def gradient(self) -> Shared: ...

    def inner(self, us: list[Shared], v: Shared) -> list[float]: ...

    def precondition(self, q: Shared) -> Shared: ...

    def step(self, d: Shared) -> None: ...


@dataclasses.dataclass
class LbfgsTrace:
    iterations: int
    losses: list[float]  # from the initial loss given, by the trapezoid rule


def _combine(ops: Ops, a: Shared, b: Shared, c: float) -> Shared:
    """``a + c b`` (``c`` public)."""
    return a.plus(b.times(c, ops.first))


def run_lbfgs(ops: Ops, initial_loss: float, memory: int, max_iter: int, tol: float) -> LbfgsTrace:
    pairs: list[tuple[Shared, Shared]] = []  # (s_k, y_k), oldest first
    ids: list[int] = []
    sy: dict[tuple[int, int], float] = {}  # <s_i, y_j> by pair ids
    loss = initial_loss
    losses = [loss]
    g = ops.gradient()
    s_g: list[float] = []  # <s_k, g>
    iterations = 0
    for _ in range(max_iter):
        iterations += 1
        rho = [1.0 / sy[(k, k)] for k in ids]
        alphas = [0.0] * len(pairs)
        q = g
        for i in reversed(range(len(pairs))):
            alphas[i] = rho[i] * (s_g[i] - sum(alphas[j] * sy[(ids[i], ids[j])] for j in range(i + 1, len(pairs))))
            q = _combine(ops, q, pairs[i][1], -alphas[i])
        r0 = ops.precondition(q)
        y_r0_g = ops.inner([p[1] for p in pairs] + [g], r0)
        betas = [0.0] * len(pairs)
        r = r0
        for i in range(len(pairs)):
            betas[i] = rho[i] * (y_r0_g[i] + sum((alphas[j] - betas[j]) * sy[(ids[j], ids[i])] for j in range(i)))
            r = _combine(ops, r, pairs[i][0], alphas[i] - betas[i])
        step = r.times(-1.0, ops.first)
        slope_before = -(y_r0_g[-1] + sum((alphas[j] - betas[j]) * s_g[j] for j in range(len(pairs))))
        ops.step(step)
        g_new = ops.gradient()
        new_s_g = ops.inner([p[0] for p in pairs] + [step], g_new)
        step_y = ops.inner([p[1] for p in pairs], step)  # <s_new, y_j>
        slope_after = new_s_g[-1]
        new_loss = loss + 0.5 * (slope_before + slope_after)
        losses.append(new_loss)
        converged = abs(loss - new_loss) / max(abs(new_loss), 1e-12) < tol
        new_id = iterations
        for j, kid in enumerate(ids):
            sy[(kid, new_id)] = new_s_g[j] - s_g[j]  # <s_k, y_new>
            sy[(new_id, kid)] = step_y[j]
        sy[(new_id, new_id)] = slope_after - slope_before
        y_new = g_new.minus(g)
        loss, g = new_loss, g_new
        if sy[(new_id, new_id)] > 0:
            pairs, ids, s_g = [*pairs, (step, y_new)], [*ids, new_id], new_s_g
        else:  # no curvature along the step (a rounding accident on a convex loss): not kept
            s_g = new_s_g[:-1]
        if len(pairs) > memory:
            pairs, ids, s_g = pairs[1:], ids[1:], s_g[1:]
        if converged:
            break
    return LbfgsTrace(iterations, losses)
