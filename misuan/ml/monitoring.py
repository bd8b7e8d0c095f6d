"""Monitoring a model over a new period: score and feature stability with sample-size-aware
thresholds, and back-testing once outcomes arrive.

**Stability.** The population stability index of the score (and the characteristic stability index,
CSI, of each feature: the same formula on the feature) between the reference period and the current
one (:func:`misuan.ml.stability.population_stability_index`, 10 quantile bins of the reference).

**Thresholds that account for sample size.** The usual reading (below 0.1 stable, 0.1-0.25 a
moderate shift, above 0.25 a large one) ignores that the index of two samples of one population is
not 0: with ``n`` reference and ``m`` current rows in ``B`` bins it is about ``(1/n + 1/m)`` times a
chi-square variable with ``B - 1`` degrees of freedom (Yurdakul 2018, "Statistical properties of
the population stability index", Western Michigan University; REFERENCES.md). With 10 bins and
500 rows in each period the null's 95th percentile is 0.068, with 200 rows 0.17: the fixed 0.1
false-alarms on small batches. So a level is raised only when the index exceeds *both* the rule and the null's
percentile: ``warn`` above ``max(0.1, q95)``, ``alert`` above ``max(0.25, q99)``.

**Back-testing** (the label party, with outcomes of the current period): the default rate and count
per score band (deciles of the reference scores), AUC and KS of the current period against the
reference period's; an AUC drop of more than ``auc_drop`` (default 0.03) is an alert.

Everything here is local to the party that holds the data; :mod:`misuan.node.steps.monitor` runs it
at each party of a job and shares only the indices and levels.
"""

from __future__ import annotations

import dataclasses
import math
from statistics import NormalDist
from typing import Any

import numpy as np

from misuan.errors import DataError
from misuan.ml.metrics import ks_statistic, roc_auc
from misuan.ml.stability import population_stability_index

__all__ = ["STABLE", "ALERT", "WARN", "Backtest", "Stability", "backtest", "chi2_quantile", "stability", "thresholds"]

STABLE, WARN, ALERT = "stable", "warn", "alert"
RULE_WARN, RULE_ALERT = 0.1, 0.25  # the industry rule of thumb (REFERENCES.md)


def chi2_quantile(df: int, q: float) -> float:
    """The ``q`` quantile of chi-square with ``df`` degrees of freedom (Wilson-Hilferty; within 1 %
    of the exact value from 3 degrees of freedom on, which is all a 10-bin index needs)."""
    if df < 1 or not 0 < q < 1:
        raise ValueError(f"df must be >= 1 and q in (0, 1), not {df}, {q}")
    z = NormalDist().inv_cdf(q)
    a = 2.0 / (9.0 * df)
    return df * max(0.0, 1.0 - a + z * math.sqrt(a)) ** 3


def thresholds(n_reference: int, n_current: int, n_bins: int) -> tuple[float, float]:
    """(warn, alert) levels of a stability index of two samples of these sizes in ``n_bins`` bins."""
    scale = 1.0 / n_reference + 1.0 / n_current
    df = max(1, n_bins - 1)
    return max(RULE_WARN, scale * chi2_quantile(df, 0.95)), max(RULE_ALERT, scale * chi2_quantile(df, 0.99))


@dataclasses.dataclass(frozen=True)
class Stability:
    """One score's or feature's stability between the two periods, and its level."""

    name: str
    index: float
    level: str  # STABLE, WARN or ALERT
    warn_at: float
    alert_at: float
    n_reference: int
    n_current: int
    bins: dict[str, Any]  # labels, shares per period, contributions (kept by the party that computed them)

    def to_dict(self, with_bins: bool = True) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if not with_bins:
            d.pop("bins")
        return d


def stability(name: str, reference: np.ndarray, current: np.ndarray, n_bins: int = 10) -> Stability:
    """The stability index of ``current`` against ``reference`` with its sample-size-aware level."""
    ref, cur = np.asarray(reference, dtype=np.float64), np.asarray(current, dtype=np.float64)
    if ref.size == 0 or cur.size == 0:
        raise DataError(f"{name}: both periods need rows to compare (reference {ref.size}, current {cur.size})")
    res = population_stability_index(ref, cur, n_bins=n_bins)
    warn, alert = thresholds(ref.size, cur.size, len(res.labels))
    level = ALERT if res.value > alert else WARN if res.value > warn else STABLE
    return Stability(name, res.value, level, warn, alert, int(ref.size), int(cur.size), res.to_dict())


@dataclasses.dataclass(frozen=True)
class Backtest:
    """The current period's outcomes against its scores (higher score: riskier), by reference score band."""

    bands: list[dict[str, Any]]  # band, score range, rows, defaults, default rate
    auc_reference: float
    auc_current: float | None  # None while the current period has no defaults (or no non-defaults) yet
    ks_reference: float
    ks_current: float | None
    level: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def backtest(ref_score: np.ndarray, ref_label: np.ndarray, cur_score: np.ndarray, cur_label: np.ndarray,
             n_bands: int = 10, auc_drop: float = 0.03) -> Backtest:
    """Default rate by score band (deciles of the reference scores) and the AUC/KS of both periods."""
    rs, ry = np.asarray(ref_score, np.float64), np.asarray(ref_label, np.float64)
    cs, cy = np.asarray(cur_score, np.float64), np.asarray(cur_label, np.float64)
    if np.unique(ry).size < 2:
        raise DataError("back-testing needs defaults and non-defaults in the reference period")
    cuts = np.unique(np.quantile(rs, np.linspace(0, 1, n_bands + 1)[1:-1]))
    band = np.searchsorted(cuts, cs, side="right")
    edges: list[float | None] = [None, *cuts.tolist(), None]  # open-ended first and last bands (JSON has no inf)
    bands = []
    for b in range(len(cuts) + 1):
        sel = band == b
        n = int(sel.sum())
        bands.append({"band": b + 1, "from": edges[b], "to": edges[b + 1], "rows": n, "defaults": int(cy[sel].sum()),
                      "default_rate": float(cy[sel].mean()) if n else None})
    auc_ref = roc_auc(ry, rs)
    if np.unique(cy).size < 2:  # a recent period often has no default yet: rates by band, no AUC to compare
        return Backtest(bands, auc_ref, None, ks_statistic(ry, rs), None, STABLE)
    auc_cur = roc_auc(cy, cs)
    level = ALERT if auc_ref - auc_cur > auc_drop else STABLE
    return Backtest(bands, auc_ref, auc_cur, ks_statistic(ry, rs), ks_statistic(cy, cs), level)
