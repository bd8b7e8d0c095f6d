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

import numpy as np

from misuan.protocols.vertical_lr.shared_vectors import Shared, Side

__all__ = ["L1Ops", "LbfgsTrace", "Ops", "orthant_point", "pseudo_gradient", "run_lbfgs", "run_owlqn"]


class Ops(Protocol):
    first: Side  # the bank: the first party of every share truncation; None: its shares are whole values

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


# --- L1: OWL-QN (Andrew and Gao 2007) ------------------------------------------------------------
class L1Ops(Ops, Protocol):
    """What OWL-QN adds: each party applies the orthant rules to its own block (in the clear: the
    feature parties hold theirs in this mode), and opens the penalty's sum."""

    def pseudo_gradient(self, g: Shared) -> Shared: ...

    def constrain(self, d: Shared, pg: Shared) -> Shared: ...

    def orthant_step(self, d: Shared, pg: Shared, t: float) -> Shared: ...

    def l1_norm(self) -> float: ...


def pseudo_gradient(w: np.ndarray, g: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The L1 objective's steepest-descent pseudo-gradient: ``g + weights * sign(w)`` off zero; at zero
    the one-sided derivative that points downhill, or 0 where neither does."""
    at_zero = np.where(g + weights < 0, g + weights, np.where(g - weights > 0, g - weights, 0.0))
    return np.where(w != 0, g + weights * np.sign(w), at_zero)


def orthant_point(w: np.ndarray, step: np.ndarray, pg: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``w + step`` with every penalised coefficient that leaves its orthant (its sign, or at zero the
    sign of ``-pg``) set to exactly zero."""
    xi = np.where(w != 0, np.sign(w), np.sign(-pg))
    new = w + step
    return np.where((weights > 0) & (np.sign(new) != xi), 0.0, new)


ARMIJO = 1e-4  # sufficient decrease of the line search
HALVINGS = 20


def run_owlqn(ops: L1Ops, initial_loss: float, memory: int, max_iter: int, tol: float) -> LbfgsTrace:
    """OWL-QN in lockstep: L-BFGS's two-loop recursion on the pseudo-gradient, the direction kept in
    the pseudo-gradient's orthant, and a backtracking line search on the objective (the smooth part
    tracked by the trapezoid rule from opened inner products, the penalty opened) with each trial
    point projected onto the current orthant. Plainer than :func:`run_lbfgs`: it opens each inner
    product the recursion needs rather than reusing kept ones (the vectors are short here)."""
    pairs: list[tuple[Shared, Shared, float]] = []  # (s, y, 1 / <s, y>)
    loss = initial_loss
    objective = loss + ops.l1_norm()
    losses = [objective]
    g = ops.gradient()
    iterations = 0
    for _ in range(max_iter):
        iterations += 1
        pg = ops.pseudo_gradient(g)
        q, alphas = pg, []
        for s, y, rho in reversed(pairs):
            a = rho * ops.inner([s], q)[0]
            alphas.append(a)
            q = _combine(ops, q, y, -a)
        r = ops.precondition(q)
        for (s, y, rho), a in zip(pairs, reversed(alphas), strict=True):
            b = rho * ops.inner([y], r)[0]
            r = _combine(ops, r, s, a - b)
        d = ops.constrain(r.times(-1.0, ops.first), pg)
        t = 1.0
        for halving in range(HALVINGS + 1):
            step = ops.orthant_step(d, pg, t)
            ops.step(step)
            g_new = ops.gradient()
            before, after, slope = ops.inner([g, g_new, pg], step)
            new_loss = loss + 0.5 * (before + after)
            new_objective = new_loss + ops.l1_norm()
            if new_objective <= objective + ARMIJO * slope or halving == HALVINGS:
                break
            ops.step(step.times(-1.0, ops.first))
            t /= 2
        y_new = g_new.minus(g)
        sy = ops.inner([step], y_new)[0]
        converged = abs(objective - new_objective) / max(abs(new_objective), 1e-12) < tol
        loss, objective, g = new_loss, new_objective, g_new
        losses.append(objective)
        if sy > 0:
            pairs = [*pairs, (step, y_new, 1.0 / sy)][-memory:]
        if converged:
            break
    return LbfgsTrace(iterations, losses)
