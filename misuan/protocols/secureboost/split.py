"""Split finding on decrypted histograms (label party, plaintext): XGBoost's gain and leaf weights."""

from __future__ import annotations

import dataclasses

import numpy as np

from misuan.protocols.secureboost.binning import FeatureBins
from misuan.protocols.secureboost.params import BoostingParams

__all__ = ["Split", "best_split", "leaf_weight", "plain_histogram"]


@dataclasses.dataclass
class Split:
    """A candidate split: ``party``'s feature ``feature``, rows in bins ``<= bin`` go left."""

    gain: float
    party: str
    feature: int
    bin: int
    default_left: bool  # where the missing values go


def best_split(G: np.ndarray, H: np.ndarray, fb: FeatureBins, g_tot: float, h_tot: float, p: BoostingParams) -> Split | None:
    """Best split over one party's sampled features from its flat per-bin sums (XGBoost's exact gain)."""
    lam, mcw = p.reg_lambda, p.min_child_weight
    parent = g_tot * g_tot / (h_tot + lam)
    best: Split | None = None
    for f, nb in enumerate(fb.n_bins):
        if not fb.mask[f] or nb <= 2:
            continue
        o = int(fb.offsets[f])
        g, h = G[o : o + nb], H[o : o + nb]
        gm, hm = g[-1], h[-1]
        cg, ch = np.cumsum(g[:-2]), np.cumsum(h[:-2])  # left = bins <= k, k < nb - 2
        for default_left, gl, hl in ((False, cg, ch), (True, cg + gm, ch + hm)):
            gr, hr = g_tot - gl, h_tot - hl
            ok = (hl >= mcw) & (hr >= mcw)
            if not ok.any():
                continue
            gain = gl * gl / (hl + lam) + gr * gr / (hr + lam) - parent
            gain = np.where(ok, gain, -np.inf)
            k = int(np.argmax(gain))
            if best is None or gain[k] > best.gain:
                best = Split(float(gain[k]), fb.party, f, k, default_left)
    return best


def leaf_weight(g: float, h: float, p: BoostingParams) -> float:
    return float(-g / (h + p.reg_lambda) * p.learning_rate)


def plain_histogram(bins: np.ndarray, fb: FeatureBins, rows: np.ndarray, g: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The label party's own per-bin sums over ``rows``, in the clear (it holds the gradients)."""
    if bins.shape[1] == 0:
        return np.zeros(0), np.zeros(0)
    flat = (bins[rows].astype(np.int64) + fb.offsets[None, :-1]).ravel()
    F = bins.shape[1]
    G = np.bincount(flat, weights=np.repeat(g[rows], F), minlength=fb.width)
    H = np.bincount(flat, weights=np.repeat(h[rows], F), minlength=fb.width)
    return G, H
