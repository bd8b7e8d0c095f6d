"""Split finding on decrypted histograms (label party, plaintext): XGBoost's gain, leaf weights and constraints.

Candidates are XGBoost's (``hist`` updater, ``EnumerateSplit``): a forward pass sends the rows of
bins ``<= k`` left and the missing values right, for every value bin ``k`` up to the last, whose
candidate is "all present values left, missing right"; a backward pass sends bins ``<= k`` and the
missing values left, down to ``k = -1`` ("missing left, every present value right", kept only where
its mirror, the forward "present left, missing right", is not allowed). Ties keep the first
candidate in XGBoost's order (forward before backward, backward from the highest bin down).
A feature with a single present value keeps its "present vs missing" candidate.

Monotone constraints (``monotone_constraints``) follow XGBoost's ``TreeEvaluator``: each node has
bounds on its (unscaled) weight; a candidate's child weights are clipped to the node's bounds, its
gain is computed from the clipped weights and a candidate whose weights break the feature's
direction gets gain ``-inf``; the children of a constrained split are bounded at the mean of the two
weights.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from misuan.protocols.secureboost.binning import PartyBins
from misuan.protocols.secureboost.params import BoostingParams

__all__ = ["Bounds", "NodeStats", "Split", "best_split", "child_bounds", "gain_given_weight", "node_weight", "plain_histogram"]


@dataclasses.dataclass(frozen=True)
class Bounds:
    """The range a node's weight is clipped to (XGBoost's lower and upper bounds); unbounded by default."""

    lower: float = -math.inf
    upper: float = math.inf


@dataclasses.dataclass
class Split:
    """A candidate split: ``party``'s feature ``feature``; rows in bins ``<= bin`` go left.

    ``bin = -1`` sends no present value left, the last value bin every present value; missing
    values go where ``default_left`` says. ``left_g``/``left_h`` are the left child's gradient and
    hessian sums as the histogram gives them (the partition a feature party returns must match).
    """

    gain: float
    party: str
    feature: int
    bin: int
    default_left: bool
    left_g: float = 0.0
    left_h: float = 0.0


def node_weight(g: float, h: float, p: BoostingParams, bounds: Bounds) -> float:
    """Unscaled weight ``-G / (H + lambda)`` clipped to ``bounds`` (XGBoost's ``CalcWeight``)."""
    w = -g / (h + p.reg_lambda)
    return float(min(max(w, bounds.lower), bounds.upper))


def gain_given_weight(g: np.ndarray | float, h: np.ndarray | float, w: np.ndarray | float, lam: float) -> np.ndarray:
    """XGBoost's ``CalcGainGivenWeight``: ``-(2 G w + (H + lambda) w^2)``, 0 where ``H <= 0``."""
    g_, h_, w_ = np.asarray(g, float), np.asarray(h, float), np.asarray(w, float)
    return np.where(h_ <= 0, 0.0, -(2.0 * g_ * w_ + (h_ + lam) * w_ * w_))


def child_bounds(parent: Bounds, constraint: int, left_weight: float, right_weight: float) -> tuple[Bounds, Bounds]:
    """The children's bounds after a split on a feature with ``constraint`` (XGBoost's ``AddSplit``)."""
    if constraint == 0:
        return parent, parent
    mid = (left_weight + right_weight) / 2
    if constraint > 0:
        return Bounds(parent.lower, mid), Bounds(mid, parent.upper)
    return Bounds(mid, parent.upper), Bounds(parent.lower, mid)


@dataclasses.dataclass(frozen=True)
class NodeStats:
    """What split finding needs of a node: its sums, its gain as a leaf, its bounds."""

    g: float
    h: float
    root_gain: float
    bounds: Bounds = Bounds()


def _candidates(
    g: np.ndarray, h: np.ndarray, node: NodeStats, p: BoostingParams, constraint: int, constrained: bool
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]]:
    """Per direction: (bins, gains, left g, left h, default_left), in XGBoost's enumeration order."""
    gm, hm = g[-1], h[-1]
    cg, ch = np.cumsum(g[:-1]), np.cumsum(h[:-1])  # left = value bins <= k, k = 0 .. last value bin
    nv = len(cg)
    forward = (np.arange(nv), cg, ch, False)
    # backward: missing left with the bins <= k, k from the last but one value bin down to -1
    bk = np.arange(nv - 2, -2, -1)
    bg = np.concatenate([cg[: nv - 1][::-1], [0.0]]) + gm
    bh = np.concatenate([ch[: nv - 1][::-1], [0.0]]) + hm
    out = []
    for bins, gl, hl, default_left in (forward, (bk, bg, bh, True)):
        gr, hr = node.g - gl, node.h - hl
        ok = (hl >= p.min_child_weight) & (hr >= p.min_child_weight)
        if constrained:
            wl = np.clip(-gl / (hl + p.reg_lambda), node.bounds.lower, node.bounds.upper)
            wr = np.clip(-gr / (hr + p.reg_lambda), node.bounds.lower, node.bounds.upper)
            gain = gain_given_weight(gl, hl, wl, p.reg_lambda) + gain_given_weight(gr, hr, wr, p.reg_lambda)
            if constraint > 0:
                ok &= wl <= wr
            elif constraint < 0:
                ok &= wl >= wr
        else:
            gain = gl * gl / (hl + p.reg_lambda) + gr * gr / (hr + p.reg_lambda)
        out.append((bins, np.where(ok, gain - node.root_gain, -np.inf), gl, hl, default_left))
    # backward k = -1 ("missing left, present right") is the forward last candidate mirrored: the same
    # gain up to float rounding, which alone would pick it; XGBoost's order keeps the forward one
    if np.isfinite(out[0][1][-1]):
        out[1][1][-1] = -np.inf
    return out


def best_split(
    G: np.ndarray, H: np.ndarray, fb: PartyBins, node: NodeStats, p: BoostingParams, constrained: bool = False
) -> Split | None:
    """Best split over one party's sampled features from its flat per-bin sums (XGBoost's exact gain).

    ``constrained``: some feature of the model has a monotone constraint, so gains come from the
    clipped weights (XGBoost switches to that form for every feature then).
    """
    best: Split | None = None
    for f, nb in enumerate(fb.n_bins):
        if not fb.mask[f] or nb < 2:
            continue
        o = int(fb.offsets[f])
        constraint = int(fb.monotone[f])
        for bins, gain, gl, hl, default_left in _candidates(G[o : o + nb], H[o : o + nb], node, p, constraint, constrained):
            if not np.isfinite(gain).any():
                continue
            k = int(np.argmax(gain))  # the first of equal gains, as XGBoost's strict improvement keeps
            if best is None or gain[k] > best.gain:
                best = Split(float(gain[k]), fb.party, f, int(bins[k]), default_left, float(gl[k]), float(hl[k]))
    return best


def plain_histogram(bins: np.ndarray, fb: PartyBins, rows: np.ndarray, g: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The label party's own per-bin sums over ``rows``, in the clear (it holds the gradients)."""
    if bins.shape[1] == 0:
        return np.zeros(0), np.zeros(0)
    flat = (bins[rows].astype(np.int64) + fb.offsets[None, :-1]).ravel()
    F = bins.shape[1]
    G = np.bincount(flat, weights=np.repeat(g[rows], F), minlength=fb.width)
    H = np.bincount(flat, weights=np.repeat(h[rows], F), minlength=fb.width)
    return G, H
