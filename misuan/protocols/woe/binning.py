"""Binning of one numeric feature, and the label-driven merging of fine pre-bins.

Everything here is local and plaintext: the feature party bins its own columns with it, and the
label party decides merges of pre-bins from per-bin aggregates it has decrypted. The secure
protocol (:mod:`misuan.protocols.woe`) and the plaintext twin (:mod:`misuan.ml.woe`) both call
these same functions, so the twin's bins equal the protocol's bins exactly. (It lives in the
protocol's package rather than ``ml/`` because the protocol needs it and may only import downward.)

Conventions, written once:

- A binning is a sorted array of interior *cuts* ``c_0 < c_1 < ... < c_{k-2}``; value bin ``i`` is
  ``(c_{i-1}, c_i]`` with ``c_{-1} = -inf`` and ``c_{k-1} = +inf``, so a value equal to a cut goes to
  the lower bin (``numpy.searchsorted(cuts, x, side="left")``, as ``pandas.cut``). Quantile cuts are
  observed values, so the bin up to the ``q``-quantile holds at least a share ``q`` of the rows.
- Missing values (NaN) get their own bin, after the value bins. If that bin would be smaller than
  ``min_bin_size`` it is merged into the smallest value bin (and the bin says so).
- Small-cell rule: every bin that is ever revealed holds at least ``min_bin_size`` rows, unless it
  is the only bin (the whole intersection, whose size and positive count the label party knows
  anyway). Small bins are merged with their smaller neighbour *before* anything leaves the feature
  party. Suppressing a small bin instead would not protect it: the label party knows its total
  positive count, so a withheld bin's aggregate is the total minus the revealed ones.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd

from misuan.errors import ConfigError, DataError
from misuan.protocols.woe.params import MAX_BINS, METHODS, SUPERVISED, WoeParams


@dataclasses.dataclass(frozen=True)
class FeatureBins:
    """A fitted binning of one feature: ``n_value_bins`` value bins split at ``cuts``, plus missing.

    ``missing_bin`` is the index of the bin that holds missing values: ``n_value_bins`` when they
    have their own bin (the last one), a value bin's index when they were merged into it for the
    small-cell rule, ``None`` when the feature had no missing values.
    """

    cuts: np.ndarray  # float64, strictly increasing, len n_value_bins - 1 (or 0)
    n_value_bins: int
    missing_bin: int | None

    @property
    def n_bins(self) -> int:
        return self.n_value_bins + (1 if self.missing_bin == self.n_value_bins else 0)

    @property
    def has_missing_bin(self) -> bool:
        """Whether missing values have a bin of their own."""
        return self.missing_bin is not None and self.missing_bin == self.n_value_bins

    def assign(self, x: np.ndarray) -> np.ndarray:
        """Bin index of every row (int64); missing rows go to ``missing_bin``."""
        x = as_numeric(x, "feature")
        miss = np.isnan(x)
        codes = np.searchsorted(self.cuts, x, side="left").astype(np.int64)
        if miss.any():
            if self.missing_bin is None:
                raise DataError("the feature has missing values but was binned without any")
            codes[miss] = self.missing_bin
        return codes

    def labels(self) -> list[str]:
        """Human-readable bin labels, e.g. ``(-inf, 1.5]``, ``(1.5, inf) + missing``, ``missing``."""
        edges = [-math.inf, *self.cuts.tolist(), math.inf]
        # right-closed, except the last bin, which is open at +inf
        close = ["]"] * (self.n_value_bins - 1) + [")"]
        return self.with_missing([f"({_fmt(edges[i])}, {_fmt(edges[i + 1])}{close[i]}" for i in range(self.n_value_bins)])

    def with_missing(self, value_labels: list[str]) -> list[str]:
        """``value_labels`` (one per value bin) with the missing values' bin marked: its own, or shared."""
        out = list(value_labels)
        if self.missing_bin is not None:
            if self.has_missing_bin:
                out.append("missing")
            else:
                out[self.missing_bin] += " + missing"
        return out

    def bounds(self) -> list[tuple[float | None, float | None]]:
        """(lower, upper) of each bin; ``None`` for the missing bin."""
        edges = [-math.inf, *self.cuts.tolist(), math.inf]
        out: list[tuple[float | None, float | None]] = [
            (edges[i], edges[i + 1]) for i in range(self.n_value_bins)
        ]
        if self.has_missing_bin:
            out.append((None, None))
        return out

    def merged(self, starts: np.ndarray) -> FeatureBins:
        """The binning in which value bins ``starts[j] .. starts[j+1]-1`` form final bin ``j``."""
        starts = check_starts(starts, self.n_value_bins, MAX_BINS)
        cuts = self.cuts[starts[1:] - 1] if self.n_value_bins else self.cuts
        n_value = len(starts) if self.n_value_bins else 0
        missing: int | None = self.missing_bin
        if missing is not None:
            missing = (
                n_value if self.has_missing_bin else int(np.searchsorted(starts, missing, side="right") - 1)
            )
        return FeatureBins(cuts=cuts, n_value_bins=n_value, missing_bin=missing)


def _fmt(v: float) -> str:
    return "inf" if v == math.inf else "-inf" if v == -math.inf else f"{v:.6g}"


def as_numeric(x: Any, name: str) -> np.ndarray:
    """``x`` as a 1-D float64 array (NaN = missing), or a :class:`DataError` naming the column."""
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise DataError(f"feature {name!r} must be one-dimensional, has shape {arr.shape}")
    if arr.dtype.kind in "biuf":
        return arr.astype(np.float64, copy=False)
    if arr.dtype.kind == "O":
        try:
            return np.array([np.nan if v is None else float(v) for v in arr], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise DataError(f"feature {name!r} is not numeric: encode categories as numbers first") from exc
    raise DataError(
        f"feature {name!r} has dtype {arr.dtype}, not numeric: encode categories as numbers first"
    )


def float_columns(features: pd.DataFrame | Mapping[str, object]) -> dict[str, np.ndarray]:
    """Each feature column as float64 (NaN = missing), all of one length, names as strings."""
    return dict(iter_float_columns(features))


def iter_float_columns(features: pd.DataFrame | Mapping[str, object]) -> Iterator[tuple[str, np.ndarray]]:
    """``(name, float64 column)`` one at a time, checked as :func:`float_columns` checks them, so a
    caller that keeps only what it derives from each column (bins, codes) holds one column at once;
    a lazy mapping (a streamed dataset's columns) reads each column only when it comes."""
    names = [str(k) for k in features.keys()]
    if len(set(names)) != len(names):
        raise DataError("feature names must be unique as strings")
    length: int | None = None
    for key, name in zip(features.keys(), names, strict=True):
        values = as_numeric(_plain_array(features[key]), name)
        if length is not None and len(values) != length:
            raise DataError(f"feature columns have different lengths {sorted({length, len(values)})}")
        length = len(values)
        yield name, values


def _plain_array(column: object) -> np.ndarray:
    # pandas' nullable dtypes (Int64, Float64, boolean) hold pd.NA: read them as float with NaN
    if isinstance(column, pd.Series) and isinstance(column.dtype, pd.api.extensions.ExtensionDtype):
        try:
            return column.to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError):
            pass  # not numeric: as_numeric names the column
    return np.asarray(column)


# --- cut points ----------------------------------------------------------------------------------
def quantile_cuts(values: np.ndarray, n_bins: int) -> np.ndarray:
    """Cuts at the ``1/n .. (n-1)/n`` quantiles of the non-missing ``values``, each an observed value."""
    v = values[~np.isnan(values)]
    if v.size == 0 or n_bins <= 1:
        return np.empty(0, np.float64)
    qs = np.quantile(v, np.arange(1, n_bins) / n_bins, method="inverted_cdf")
    cuts = np.unique(qs)
    # a cut at the maximum would leave an empty last bin; infinite values fall in the end bins
    return cuts[(cuts < v.max()) & np.isfinite(cuts)].astype(np.float64)


def equal_width_cuts(values: np.ndarray, n_bins: int) -> np.ndarray:
    """Cuts splitting ``[min, max]`` of the finite ``values`` into ``n_bins`` equal widths (infinite
    values fall in the end bins)."""
    v = values[np.isfinite(values)]
    if v.size == 0 or n_bins <= 1:
        return np.empty(0, np.float64)
    lo, hi = float(v.min()), float(v.max())
    if lo == hi:
        return np.empty(0, np.float64)
    return np.unique(np.linspace(lo, hi, n_bins + 1)[1:-1])


def fit_bins(values: np.ndarray, cuts: np.ndarray, min_bin_size: int) -> FeatureBins:
    """Bins at ``cuts``, then merged until every bin holds ``min_bin_size`` rows (the small-cell rule)."""
    miss = np.isnan(values)
    n_missing = int(miss.sum())
    vals = values[~miss]
    if vals.size == 0:
        return FeatureBins(np.empty(0, np.float64), 0, 0 if n_missing else None)
    counts = np.bincount(np.searchsorted(cuts, vals, side="left"), minlength=len(cuts) + 1)
    cut_list, count_list = _merge_small(list(cuts.tolist()), counts.tolist(), min_bin_size)
    n_value = len(count_list)
    missing: int | None = None
    if n_missing:
        if n_missing >= min_bin_size and sum(count_list) >= min_bin_size:
            missing = n_value
        else:
            # a small missing group joins the smallest value bin; a small value group joins the
            # missing rows, which leaves a single bin holding everything
            missing = int(np.argmin(count_list)) if n_missing < min_bin_size else 0
    return FeatureBins(np.asarray(cut_list, np.float64), n_value, missing)


def _merge_small(cuts: list[float], counts: list[int], min_size: int) -> tuple[list[float], list[int]]:
    """Merge the smallest bin into its smaller neighbour until every bin reaches ``min_size``."""
    while len(counts) > 1 and min(counts) < min_size:
        i = counts.index(min(counts))
        if i == 0:
            j = 1
        elif i == len(counts) - 1:
            j = i - 1
        else:
            j = i - 1 if counts[i - 1] <= counts[i + 1] else i + 1
        lo = min(i, j)
        counts[lo] += counts.pop(lo + 1)
        del cuts[lo]  # the cut between bins lo and lo+1
    return cuts, counts


def unsupervised_bins(values: np.ndarray, method: str, params: WoeParams) -> FeatureBins:
    """The final bins of a ``quantile`` or ``equal_width`` feature, or the pre-bins of a supervised one."""
    if method == "equal_width":
        cuts = equal_width_cuts(values, params.n_bins)
    elif method == "quantile":
        cuts = quantile_cuts(values, params.n_bins)
    elif method in SUPERVISED:
        cuts = quantile_cuts(values, params.n_prebins)
    else:
        raise ConfigError(f"unknown binning method {method!r}; choose one of {', '.join(METHODS)}")
    return fit_bins(values, cuts, params.min_bin_size)


# --- merging pre-bins on their aggregates (the label party's side) --------------------------------
def check_starts(starts: np.ndarray, n_value_bins: int, max_bins: int) -> np.ndarray:
    """Validate merge decisions: the first pre-bin of each final bin, strictly increasing from 0."""
    s = np.asarray(starts)
    if s.dtype.kind not in "iu" or s.ndim != 1:
        raise ValueError(f"merge starts must be a 1-D integer array, got {s.dtype} of shape {s.shape}")
    s = s.astype(np.int64)
    if n_value_bins == 0:
        if s.size:
            raise ValueError("merge starts given for a feature without value bins")
        return s
    if not 1 <= s.size <= min(max_bins, n_value_bins):
        raise ValueError(f"{s.size} merged bins for {n_value_bins} pre-bins (at most {max_bins} allowed)")
    if s[0] != 0 or np.any(np.diff(s) <= 0) or s[-1] >= n_value_bins:
        raise ValueError(f"merge starts must rise strictly from 0 and stay below {n_value_bins}")
    return s


def chimerge_starts(
    counts: np.ndarray, positives: np.ndarray, max_bins: int, threshold: float | None = None
) -> np.ndarray:
    """ChiMerge: merge the adjacent pair with the smallest chi-square until at most ``max_bins`` remain
    (and, with ``threshold``, until every adjacent pair differs by at least that chi-square)."""
    pos = [float(p) for p in positives]
    neg = [float(c - p) for c, p in zip(counts, positives, strict=True)]
    starts = list(range(len(pos)))
    while len(pos) > 1:
        chi = [_chi2(pos[i], neg[i], pos[i + 1], neg[i + 1]) for i in range(len(pos) - 1)]
        k = int(np.argmin(chi))
        if len(pos) <= max_bins and (threshold is None or chi[k] >= threshold):
            break
        pos[k] += pos.pop(k + 1)
        neg[k] += neg.pop(k + 1)
        del starts[k + 1]
    return np.asarray(starts, np.int64)


def _chi2(p1: float, n1: float, p2: float, n2: float) -> float:
    """Pearson chi-square of the 2x2 table (bins x class); 0 where a class is absent from both."""
    total = p1 + n1 + p2 + n2
    out = 0.0
    for obs, row, col in (
        (p1, p1 + n1, p1 + p2),
        (n1, p1 + n1, n1 + n2),
        (p2, p2 + n2, p1 + p2),
        (n2, p2 + n2, n1 + n2),
    ):
        exp = row * col / total
        if exp > 0:
            out += (obs - exp) ** 2 / exp
    return out


def tree_starts(counts: np.ndarray, positives: np.ndarray, max_bins: int) -> np.ndarray:
    """Optimal binning by a best-first decision tree on the pre-bins: split the segment whose best split
    reduces weighted entropy most, until ``max_bins`` segments or no split helps."""
    c = np.concatenate([[0], np.cumsum(np.asarray(counts, np.float64))])
    p = np.concatenate([[0], np.cumsum(np.asarray(positives, np.float64))])

    def impurity(lo: int, hi: int) -> float:  # count-weighted binary entropy of pre-bins lo..hi-1
        n, k = c[hi] - c[lo], p[hi] - p[lo]
        return float(n * _entropy(k / n)) if n > 0 else 0.0

    def best_split(lo: int, hi: int) -> tuple[float, int]:
        base = impurity(lo, hi)
        best = (0.0, -1)
        for s in range(lo + 1, hi):
            gain = base - impurity(lo, s) - impurity(s, hi)
            if gain > best[0] + 1e-9 * max(base, 1.0):
                best = (gain, s)
        return best

    segments = [(0, len(counts))]
    while len(segments) < max_bins:
        gains = [best_split(lo, hi) for lo, hi in segments]
        k = int(np.argmax([g for g, _ in gains]))
        gain, s = gains[k]
        if s < 0:
            break
        lo, hi = segments[k]
        segments[k : k + 1] = [(lo, s), (s, hi)]
    return np.asarray([lo for lo, _ in segments], np.int64)


def monotonic_starts(counts: np.ndarray, positives: np.ndarray, max_bins: int) -> np.ndarray:
    """Monotone binning: merge adjacent pre-bins until the event rate only rises or only falls along
    the feature (pool-adjacent-violators), then, while more than ``max_bins`` remain, the adjacent
    pair with the smallest chi-square (merging neighbours keeps a monotone sequence monotone).

    The direction is the sign of the count-weighted covariance of pre-bin order and event rate: the
    trend the pre-bins show, which scorecard practice then enforces."""
    n = np.asarray(counts, np.float64)
    pos = np.asarray(positives, np.float64)
    if n.size == 0:
        return np.empty(0, np.int64)
    w = n / max(float(n.sum()), 1.0)
    order = np.arange(n.size, dtype=np.float64)
    rate = np.divide(pos, n, out=np.zeros_like(pos), where=n > 0)
    rising = float(np.sum(w * (order - np.sum(w * order)) * (rate - np.sum(w * rate)))) >= 0
    segments: list[list[float]] = []  # [first pre-bin, rows, positives]
    for i, (c, p) in enumerate(zip(n, pos, strict=True)):
        segments.append([float(i), float(c), float(p)])
        while len(segments) > 1:
            (_, n1, p1), (_, n2, p2) = segments[-2], segments[-1]
            # an empty segment has no rate: it joins its neighbour; else compare p1/n1 with p2/n2
            if n1 > 0 and n2 > 0 and (p1 * n2 <= p2 * n1 if rising else p1 * n2 >= p2 * n1):
                break
            segments[-2][1:] = [n1 + n2, p1 + p2]
            segments.pop()
    while len(segments) > max(max_bins, 1):
        chi = [_chi2(a[2], a[1] - a[2], b[2], b[1] - b[2]) for a, b in zip(segments, segments[1:], strict=False)]
        k = int(np.argmin(chi))
        segments[k][1:] = [segments[k][1] + segments[k + 1][1], segments[k][2] + segments[k + 1][2]]
        del segments[k + 1]
    return np.asarray([int(s[0]) for s in segments], np.int64)


def _entropy(q: float) -> float:
    return 0.0 if q <= 0.0 or q >= 1.0 else -(q * math.log(q) + (1 - q) * math.log(1 - q))


def merge_prebins(
    method: str, bins: FeatureBins, counts: np.ndarray, positives: np.ndarray, params: WoeParams
) -> np.ndarray:
    """The label party's merge decision for one supervised feature, from its pre-bin aggregates.

    Only value pre-bins are merged (a missing bin of its own stays apart); returns the starts.
    """
    k = bins.n_value_bins
    if k == 0:
        return np.empty(0, np.int64)
    if method == "chimerge":
        return chimerge_starts(counts[:k], positives[:k], params.n_bins, params.chi2_threshold)
    if method == "tree":
        return tree_starts(counts[:k], positives[:k], params.n_bins)
    if method == "monotonic":
        return monotonic_starts(counts[:k], positives[:k], params.n_bins)
    raise ConfigError(f"{method!r} is not a supervised binning method ({', '.join(SUPERVISED)})")


def merge_counts(bins: FeatureBins, starts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per-bin aggregates after merging: value pre-bins summed per final bin, the missing bin kept."""
    k = bins.n_value_bins
    if k == 0:
        return values.copy()
    merged = np.add.reduceat(values[:k], starts)
    return np.concatenate([merged, values[k:]])
