"""Horizontal binning and WOE/IV: lenders with the same features on different customers agree on
one set of bins, and get each bin's weight of evidence and each feature's information value over
all their customers, over secure aggregation (:mod:`misuan.protocols.secagg`); no lender's counts
leave it, only the sums over all of them.

Bins (:func:`agree_edges`, three aggregation rounds): the count of present values per binary
exponent gives each feature's pooled largest magnitude (a power of two); the sum of each feature
over it, of its square and the count of its present values give the pooled mean and standard
deviation (in any unit: a card limit's squares would not fit the ring unscaled); a fine histogram
(``fine_bins`` cells over the mean plus or minus 8 standard deviations, and two open-ended cells)
gives the pooled quantiles, hence ``max_bin`` bins per feature, cut at fine-cell edges (so within
one fine cell of the pooled quantile). Missing values get a bin of their own.

WOE/IV (:func:`woe_as_data_party`, one more round): the count of bads and of goods per feature and
bin, summed; WOE and IV of the non-empty bins by the vertical protocol's formula
(:func:`misuan.protocols.woe.table.woe_iv_ks`: 0.5 added to every count of a feature only where a
bin lacks a class), so the horizontal and vertical tables agree on the same data.

A feature whose spread is below about 2^-20 of its magnitude (0.5 plus or minus 1e-7, say) loses
bins: its variance comes from sums in 2^-20 fixed point.

**What is revealed**, to the aggregator and every data party: the pooled count of values per
binary exponent of each feature, the pooled per-feature sums, squares and counts, the pooled fine histograms (the pooled distribution of each feature at the fine
resolution), and the pooled good and bad counts per bin: the scorecard's binning table, computed as
if the rows were pooled, and nothing about any one lender's rows.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from misuan.errors import DataError
from misuan.ml.horizontal_rounds import FitRounds, checked_rows
from misuan.net.channel import Channel
from misuan.protocols.woe.table import woe_iv_ks

__all__ = [
    "HorizontalWoe", "agree_edges", "bin_values", "edges_from_json", "edges_to_json", "woe_as_aggregator",
    "woe_as_data_party",
]

_SPAN = 8.0  # the fine grid covers the pooled mean plus or minus this many standard deviations

Aggregate = Callable[[Callable[[], np.ndarray]], np.ndarray]  # one round: this party's vector (computed) -> the sum


_EXPONENTS = 160  # binary exponents of |x| from 2^-80 to 2^79 (clipped at both ends)


def _magnitudes(x: np.ndarray) -> np.ndarray:
    """Per feature, how many present values have each binary exponent (``|x| < 2^e``)."""
    d = x.shape[1]
    present = ~np.isnan(x)
    _, e = np.frexp(np.where(present, x, 0.0))
    cells = np.clip(e + _EXPONENTS // 2, 0, _EXPONENTS - 1)
    out = np.zeros((d, _EXPONENTS))
    for f in range(d):
        out[f] = np.bincount(cells[present[:, f], f], minlength=_EXPONENTS)
    return out.reshape(-1)


def _moments(x: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Per feature: the sum and the sum of squares of the present values over ``scale`` (so at most
    1 each, whatever the feature's unit), and their count."""
    present = ~np.isnan(x)
    xz = np.where(present, x / scale, 0.0)
    return np.concatenate([xz.sum(axis=0), (xz * xz).sum(axis=0), present.sum(axis=0).astype(np.float64)])


def _fine(x: np.ndarray, lo: np.ndarray, width: np.ndarray, fine_bins: int) -> np.ndarray:
    """Per feature, the count of present values in each fine cell (0: below the grid, last: above)."""
    d = x.shape[1]
    cells = np.clip(np.nan_to_num(np.floor((x - lo) / width) + 1, nan=-1.0), -1, fine_bins + 1).astype(np.int64)
    out = np.zeros((d, fine_bins + 2))
    for f in range(d):
        keep = cells[:, f] >= 0
        out[f] = np.bincount(cells[keep, f], minlength=fine_bins + 2)
    return out.reshape(-1)


def agree_edges(agg: Aggregate, x: np.ndarray, max_bin: int, fine_bins: int) -> list[np.ndarray]:
    """The ``max_bin - 1`` cut points of each feature from the pooled data, the same at every party
    (``x``: this party's rows, none at the aggregator)."""
    d = x.shape[1]
    # the pooled largest magnitude of each feature (a power of two), so the sums of squares fit
    mags = agg(functools.partial(_magnitudes, x)).reshape(d, _EXPONENTS)
    top = np.array([np.max(np.flatnonzero(m > 0.5), initial=0) for m in mags]) - _EXPONENTS // 2
    scale = np.ldexp(1.0, top)
    mom = agg(functools.partial(_moments, x, scale))
    count = np.maximum(mom[2 * d :], 1.0)
    mean = mom[:d] / count
    std = (np.sqrt(np.maximum(mom[d : 2 * d] / count - mean * mean, 0.0)) + 1e-9) * scale
    mean = mean * scale
    lo, width = mean - _SPAN * std, 2 * _SPAN * std / fine_bins
    hist = agg(functools.partial(_fine, x, lo, width, fine_bins)).reshape(d, fine_bins + 2)
    edges = []
    for f in range(d):
        cum = np.cumsum(hist[f])
        cell = np.searchsorted(cum, cum[-1] * np.arange(1, max_bin) / max_bin, side="left")  # holding each quantile
        cuts = np.unique(lo[f] + width[f] * cell)  # the upper edge of that cell
        if cuts.size < max_bin - 1:  # fewer distinct cuts than bins: pad past the top (empty bins)
            cuts = np.concatenate([cuts, np.full(max_bin - 1 - cuts.size, np.inf)])
        edges.append(cuts)
    return edges


def bin_values(x: np.ndarray, edges: list[np.ndarray]) -> np.ndarray:
    """Bin of each value (0 .. max_bin - 1), ``max_bin`` for a missing one."""
    out = np.empty(x.shape, dtype=np.int64)
    for f, e in enumerate(edges):
        col = x[:, f]
        out[:, f] = np.searchsorted(e, col, side="left")
        out[np.isnan(col), f] = len(e) + 1
    return out


def edges_to_json(edges: list[np.ndarray]) -> list[list[float | None]]:
    """Cut points as JSON (the infinite ones that pad a feature with few values as null)."""
    return [[float(c) if np.isfinite(c) else None for c in e.tolist()] for e in edges]


def edges_from_json(doc: Any, where: str) -> list[np.ndarray]:
    """The inverse of :func:`edges_to_json`; a :class:`DataError` naming ``where`` for anything else."""
    if not isinstance(doc, list) or not all(isinstance(e, list) for e in doc) or len({len(e) for e in doc}) > 1:
        raise DataError(f"{where}: the bin edges must be lists of cut points of one length per feature")
    try:
        edges = [np.array([np.inf if c is None else float(c) for c in e], dtype=np.float64) for e in doc]
    except (TypeError, ValueError):
        raise DataError(f"{where}: a bin edge is not a number") from None
    if any(np.isnan(e).any() or np.any(e[1:] < e[:-1]) for e in edges):
        raise DataError(f"{where}: the bin edges of a feature must be ascending numbers")
    return edges


@dataclasses.dataclass
class HorizontalWoe:
    """The pooled binning table every party ends with."""

    edges: list[np.ndarray]
    bads: np.ndarray  # (features, max_bin + 1): pooled bad counts per bin, the last bin missing values
    goods: np.ndarray
    woe: np.ndarray
    iv: np.ndarray  # (features,)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Each value replaced by its bin's WOE (the scorecard's input)."""
        b = bin_values(np.asarray(x, dtype=np.float64), self.edges)
        return np.take_along_axis(self.woe.T, b, axis=0) if b.size else np.zeros(b.shape)

    def to_dict(self) -> dict[str, object]:
        return {"edges": edges_to_json(self.edges), "bads": self.bads.tolist(), "goods": self.goods.tolist(),
                "woe": self.woe.tolist(), "iv": self.iv.tolist()}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], where: str = "the binning table") -> HorizontalWoe:
        edges = edges_from_json(doc.get("edges"), where)
        k = len(edges[0]) + 2 if edges else 0
        try:
            arrays = [np.asarray(doc[key], dtype=np.float64) for key in ("bads", "goods", "woe")]
            iv = np.asarray(doc["iv"], dtype=np.float64)
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{where}: bads, goods, woe and iv must be tables of numbers") from None
        if any(a.shape != (len(edges), k) for a in arrays) or iv.shape != (len(edges),):
            raise DataError(f"{where}: bads, goods and woe need one row per feature and {k} bins, iv one value a feature")
        return cls(edges, arrays[0], arrays[1], arrays[2], iv)


def _counts(x: np.ndarray, y: np.ndarray, edges: list[np.ndarray]) -> np.ndarray:
    b = bin_values(x, edges)
    k = len(edges[0]) + 2
    out = np.zeros((2, x.shape[1], k))
    for f in range(x.shape[1]):
        out[0, f] = np.bincount(b[:, f], weights=y, minlength=k)
        out[1, f] = np.bincount(b[:, f], minlength=k) - out[0, f]
    return out.reshape(-1)


def _woe(agg: Aggregate, x: np.ndarray, y: np.ndarray, max_bin: int, fine_bins: int) -> HorizontalWoe:
    edges = agree_edges(agg, x, max_bin, fine_bins)
    counts = agg(functools.partial(_counts, x, y, edges)).reshape(2, x.shape[1], max_bin + 1)
    bads, goods = np.round(counts[0]), np.round(counts[1])
    woe, iv = np.zeros(bads.shape), np.zeros(bads.shape[0])
    for f in range(bads.shape[0]):
        used = (bads[f] + goods[f]) > 0  # empty bins (past a feature's few values, no missing) carry nothing
        if not used.any():
            continue
        # the vertical WOE's formula (smoothing only where a bin lacks a class): the same IV on the same table
        w, iv_bins, _ = woe_iv_ks(bads[f, used] + goods[f, used], bads[f, used], smoothing=0.5)
        woe[f, used], iv[f] = w, float(np.sum(iv_bins))
    return HorizontalWoe(edges, bads, goods, woe, iv)


def woe_as_data_party(
    chan: Channel, x: np.ndarray, y: np.ndarray, *, aggregator: str, data_parties: list[str], max_bin: int = 10,
    fine_bins: int = 1024, round_timeout_s: float = 60.0, step: str = "hwoe",
) -> HorizontalWoe:
    """The pooled bins, WOE and IV, as one of ``data_parties`` with its rows ``x`` (NaN: missing) and 0/1 ``y``."""
    xa, ya = checked_rows(x, y, missing=True)
    rounds = FitRounds(chan, aggregator=aggregator, data_parties=data_parties, step=step,
                       context=_context(xa.shape[1], max_bin, fine_bins), round_timeout_s=round_timeout_s)
    return _woe(rounds, xa, ya, max_bin, fine_bins)


def woe_as_aggregator(
    chan: Channel, n_features: int, *, data_parties: list[str], max_bin: int = 10, fine_bins: int = 1024,
    round_timeout_s: float = 60.0, step: str = "hwoe",
) -> HorizontalWoe:
    """Aggregate the rounds of :func:`woe_as_data_party` and compute the same table."""
    rounds = FitRounds(chan, aggregator=chan.party, data_parties=data_parties, step=step,
                       context=_context(n_features, max_bin, fine_bins), round_timeout_s=round_timeout_s)
    return _woe(rounds, np.empty((0, n_features)), np.empty(0), max_bin, fine_bins)


def _context(n_features: int, max_bin: int, fine_bins: int) -> str:
    return f"horizontal-woe v1 features={n_features} max_bin={max_bin} fine_bins={fine_bins}"
