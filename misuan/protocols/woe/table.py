"""WOE, IV, KS and monotonicity of one binned feature, from per-bin aggregates; the result types of both roles.

The label party computes these after decrypting per-bin positive counts; the plaintext twin
(:mod:`misuan.ml.woe`) computes them from the joined data with the same function, so both agree.

Conventions: label 1 is the *event* ("bad"), label 0 the non-event ("good"). For bin ``i`` with
``g_i`` goods and ``b_i`` bads out of ``G`` and ``B``:

    WOE_i = ln( (g_i / G) / (b_i / B) )          IV = sum_i (g_i / G - b_i / B) * WOE_i
    KS    = max_j | sum_{i<=j} b_i / B - sum_{i<=j} g_i / G |   (bins in value order, missing last)

If some bin of the feature has no goods or no bads, ``smoothing`` is added to every bin's ``g_i``
and ``b_i`` (and ``G``, ``B`` grow accordingly) for WOE and IV, so they stay finite; KS always uses
the raw counts. A feature is *monotonic* when the WOE of its value bins (the missing bin of its own
excluded) never rises or never falls in value order.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from misuan.errors import DataError
from misuan.protocols.woe.binning import FeatureBins


@dataclasses.dataclass(frozen=True)
class BinStats:
    """One bin of one feature as the label party sees it."""

    index: int
    label: str  # e.g. "(1.5, 3]", "missing", "bin 2" when edges were not shared
    lower: float | None  # None for the missing bin or when edges were not shared
    upper: float | None
    contains_missing: bool
    count: int
    positives: int
    woe: float
    iv: float  # this bin's contribution to the feature's IV

    def to_dict(self) -> dict[str, Any]:
        return {k: _json_float(v) for k, v in dataclasses.asdict(self).items()}


@dataclasses.dataclass(frozen=True)
class FeatureWoe:
    """WOE/IV/KS of one feature; JSON-able through :meth:`to_dict`."""

    feature: str
    method: str
    bins: list[BinStats]
    iv: float
    ks: float
    monotonic: bool
    trend: str  # "increasing", "decreasing", "flat" or "none" (WOE in value order)
    n_rows: int
    n_positives: int
    edges_shared: bool

    def to_dict(self) -> dict[str, Any]:
        d = {k: _json_float(v) for k, v in dataclasses.asdict(self).items() if k != "bins"}
        d["bins"] = [b.to_dict() for b in self.bins]
        return d


@dataclasses.dataclass(frozen=True)
class WoeResult:
    """The label party's result of a WOE/IV job: one :class:`FeatureWoe` per feature."""

    features: list[FeatureWoe]
    n_rows: int
    n_positives: int

    def by_iv(self) -> list[FeatureWoe]:
        """Features from the highest IV down (ties by name)."""
        return sorted(self.features, key=lambda f: (-f.iv, f.feature))

    def __getitem__(self, feature: str) -> FeatureWoe:
        for f in self.features:
            if f.feature == feature:
                return f
        raise KeyError(feature)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_rows": self.n_rows,
            "n_positives": self.n_positives,
            "features": [f.to_dict() for f in self.by_iv()],
        }

    def table(self) -> list[dict[str, Any]]:
        """One row per bin for the report, features sorted by IV (highest first), bins in order."""
        rows = []
        for f in self.by_iv():
            for b in f.bins:
                rows.append(
                    {
                        "feature": f.feature,
                        "bin": b.label,
                        "lower": b.lower,
                        "upper": b.upper,
                        "count": b.count,
                        "positives": b.positives,
                        "woe": b.woe,
                        "bin_iv": b.iv,
                        "iv": f.iv,
                        "ks": f.ks,
                        "monotonic": "yes" if f.monotonic else "no",
                    }
                )
        return rows

    def summary(self) -> list[dict[str, Any]]:
        """One row per feature (feature, method, bins, IV, KS, monotonic), sorted by IV."""
        return [
            {
                "feature": f.feature,
                "method": f.method,
                "bins": len(f.bins),
                "iv": f.iv,
                "ks": f.ks,
                "monotonic": "yes" if f.monotonic else "no",
            }
            for f in self.by_iv()
        ]


@dataclasses.dataclass(frozen=True)
class FeaturePartyWoe:
    """What the feature party ends with: its final bins per feature (and IVs if the label party shared them)."""

    bins: dict[str, FeatureBins]
    methods: dict[str, str]
    iv: dict[str, float] | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": {
                name: {
                    "method": self.methods[name],
                    "cuts": b.cuts.tolist(),
                    "bins": b.labels(),
                    "missing_bin": b.missing_bin,
                    "iv": None if self.iv is None else self.iv.get(name),
                }
                for name, b in self.bins.items()
            }
        }


def _json_float(v: Any) -> Any:
    # JSON has no inf/nan: the bounds of the first/last bin become strings
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


def check_labels(labels: object) -> np.ndarray:
    """Labels as an int64 array of 0/1, or a :class:`DataError` saying what is wrong."""
    y = np.asarray(labels)
    if y.ndim != 1 or y.size == 0:
        raise DataError(f"labels must be a non-empty 1-D array, got shape {y.shape}")
    if y.dtype.kind == "b":
        return y.astype(np.int64)
    if y.dtype.kind not in "iuf" or not np.all(np.isin(y, (0, 1))):
        raise DataError("labels must be 0 (non-event) or 1 (event) with no missing values")
    return y.astype(np.int64)


def woe_iv_ks(
    counts: np.ndarray, positives: np.ndarray, smoothing: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """Per-bin WOE and IV contributions and the KS of bins given in order; see the module docstring."""
    c = np.asarray(counts, np.float64)
    b = np.asarray(positives, np.float64)
    g = c - b
    if b.sum() == 0 or g.sum() == 0:
        raise DataError("the labels contain only one class: WOE/IV need both positives and negatives")
    if smoothing > 0 and (np.any(g == 0) or np.any(b == 0)):
        gs, bs = g + smoothing, b + smoothing
    else:
        gs, bs = g, b
    dg, db = gs / gs.sum(), bs / bs.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        woe = np.log(dg / db)
        iv_bins = np.where(dg == db, 0.0, (dg - db) * woe)
    ks = float(np.max(np.abs(np.cumsum(b / b.sum()) - np.cumsum(g / g.sum()))))
    return woe, iv_bins, ks


def _trend(woe: np.ndarray) -> str:
    d = np.diff(woe)
    if d.size == 0 or np.all(d == 0):
        return "flat"
    if np.all(d >= 0):
        return "increasing"
    if np.all(d <= 0):
        return "decreasing"
    return "none"


def feature_woe(
    feature: str,
    method: str,
    bins: FeatureBins,
    counts: np.ndarray,
    positives: np.ndarray,
    smoothing: float,
    edges_shared: bool = True,
) -> FeatureWoe:
    """Build one feature's :class:`FeatureWoe` from its final bins and per-bin aggregates."""
    if len(counts) != bins.n_bins or len(positives) != bins.n_bins:
        raise ValueError(f"{feature}: {len(counts)} counts for {bins.n_bins} bins")
    woe, iv_bins, ks = woe_iv_ks(counts, positives, smoothing)
    labels = bins.labels() if edges_shared else _anonymous_labels(bins)
    bounds = bins.bounds() if edges_shared else [(None, None)] * bins.n_bins
    rows = [
        BinStats(
            index=i,
            label=labels[i],
            lower=bounds[i][0],
            upper=bounds[i][1],
            contains_missing=bins.missing_bin == i,
            count=int(counts[i]),
            positives=int(positives[i]),
            woe=float(woe[i]),
            iv=float(iv_bins[i]),
        )
        for i in range(bins.n_bins)
    ]
    trend = _trend(woe[: bins.n_value_bins])
    return FeatureWoe(
        feature=feature,
        method=method,
        bins=rows,
        iv=float(iv_bins.sum()),
        ks=ks,
        monotonic=trend != "none",
        trend=trend,
        n_rows=int(np.sum(counts)),
        n_positives=int(np.sum(positives)),
        edges_shared=edges_shared,
    )


def _anonymous_labels(bins: FeatureBins) -> list[str]:
    return bins.with_missing([f"bin {i + 1}" for i in range(bins.n_value_bins)])
