"""Credit-scoring metrics in vectorised numpy: ROC curve, AUC, and the Kolmogorov-Smirnov statistic.

Conventions: ``y`` holds the actual class, 1 = bad (defaulted), 0 = good; ``p`` holds scores where a
higher value means riskier (a predicted probability of default). Ties in ``p`` are one threshold, so
tied scores move the ROC curve diagonally and count half in the AUC (the Mann-Whitney convention,
as scikit-learn does). Scikit-learn is only a test dependency: nothing here imports it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from numpy.typing import ArrayLike

from misuan.errors import DataError

__all__ = ["KsCurve", "RocCurve", "ks_curve", "ks_statistic", "roc_auc", "roc_curve"]


@dataclasses.dataclass(frozen=True)
class RocCurve:
    """Points of the ROC curve, from (0, 0) at threshold +inf to (1, 1) at the lowest score.

    ``fpr[i]``, ``tpr[i]``: shares of goods and of bads with score >= ``thresholds[i]``.
    """

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray


@dataclasses.dataclass(frozen=True)
class KsCurve:
    """Cumulative score distributions of bads and goods, from the riskiest score down.

    ``cum_bad[i]`` / ``cum_good[i]``: share of bads / goods with score >= ``thresholds[i]``
    (these are the ROC's tpr / fpr). ``ks`` = max |cum_bad - cum_good|, reached at ``thresholds[argmax]``.
    """

    thresholds: np.ndarray
    cum_bad: np.ndarray
    cum_good: np.ndarray
    ks: float
    argmax: int

    @property
    def ks_threshold(self) -> float:
        return float(self.thresholds[self.argmax])


def _check(y: ArrayLike, p: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    ya = np.asarray(y)
    pa = np.asarray(p, dtype=np.float64)
    if ya.ndim != 1 or pa.ndim != 1 or ya.shape != pa.shape:
        raise DataError(f"labels and scores must be 1-D of equal length, got shapes {ya.shape} and {pa.shape}")
    if not np.all(np.isfinite(pa)):
        raise DataError(f"scores must be finite: {int(np.sum(~np.isfinite(pa)))} are NaN or infinite")
    if ya.dtype == bool:
        ya = ya.astype(np.int8)
    if not np.all((ya == 0) | (ya == 1)):
        raise DataError(f"labels must be 0 (good) or 1 (bad), found values {np.unique(ya)[:10].tolist()}")
    yi = ya.astype(np.int8)
    n_bad = int(yi.sum())
    if n_bad == 0 or n_bad == yi.size:
        raise DataError(
            f"ROC, AUC and KS need both classes, got {n_bad} bad of {yi.size}: evaluate on a sample with both"
        )
    return yi, pa


def roc_curve(y: ArrayLike, p: ArrayLike) -> RocCurve:
    """The ROC curve with one point per distinct score (no points dropped), plus the (0, 0) start."""
    yi, pa = _check(y, p)
    order = np.argsort(-pa, kind="mergesort")
    ps = pa[order]
    ys = yi[order]
    # the last index of each run of tied scores: the curve only has a point where the score changes
    last = np.flatnonzero(np.r_[ps[1:] != ps[:-1], True])
    tp = np.cumsum(ys, dtype=np.int64)[last]
    fp = (last + 1) - tp
    tpr = np.r_[0.0, tp / tp[-1]]
    fpr = np.r_[0.0, fp / fp[-1]]
    thresholds = np.r_[np.inf, ps[last]]
    return RocCurve(fpr=fpr, tpr=tpr, thresholds=thresholds)


def roc_auc(y: ArrayLike, p: ArrayLike) -> float:
    """Area under the ROC curve: the probability a random bad scores above a random good (ties half)."""
    c = roc_curve(y, p)
    return float(np.sum(np.diff(c.fpr) * (c.tpr[1:] + c.tpr[:-1])) / 2.0)


def ks_curve(y: ArrayLike, p: ArrayLike) -> KsCurve:
    """The two cumulative distributions of the KS plot and their largest gap."""
    c = roc_curve(y, p)
    gap = np.abs(c.tpr - c.fpr)
    i = int(np.argmax(gap))
    return KsCurve(thresholds=c.thresholds, cum_bad=c.tpr, cum_good=c.fpr, ks=float(gap[i]), argmax=i)


def ks_statistic(y: ArrayLike, p: ArrayLike) -> float:
    """Kolmogorov-Smirnov statistic: the largest gap between the bads' and goods' score distributions."""
    return ks_curve(y, p).ks
