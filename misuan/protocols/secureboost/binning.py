"""Each party's own quantile bins (no exchange): :class:`QuantileBinner`, and reading feature tables."""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol, runtime_checkable

import numpy as np

from misuan.errors import DataError

__all__ = ["ColumnTable", "PartyBins", "QuantileBinner", "as_matrix", "binned_features", "column_codes"]


@dataclasses.dataclass
class QuantileBinner:
    """Per-feature quantile cuts; bin ``b`` holds ``cuts[b-1] <= x < cuts[b]``; the last bin is missing.

    A split "at bin k" sends ``x < cuts[k]`` left. Features with at most ``max_bin`` distinct values
    get a cut at every distinct value, so no split XGBoost could make is lost.
    """

    max_bin: int
    cuts: list[np.ndarray] = dataclasses.field(default_factory=list)

    def fit(self, X: np.ndarray) -> QuantileBinner:
        self.cuts = [self.column_cuts(X[:, j]) for j in range(X.shape[1])]
        return self

    def column_cuts(self, col: np.ndarray) -> np.ndarray:
        """The cuts of one feature's values (NaN = missing)."""
        col = col[~np.isnan(col)]
        uniq = np.unique(col)
        if len(uniq) <= 1:
            cuts = np.zeros(0)
        elif len(uniq) <= self.max_bin:
            cuts = uniq[1:]
        else:
            qs = np.quantile(col, np.linspace(0, 1, self.max_bin + 1)[1:-1], method="linear")
            cuts = np.unique(qs)
            cuts = cuts[cuts > uniq[0]]
        return np.asarray(cuts, dtype=np.float64)

    @property
    def n_bins(self) -> list[int]:
        """Bins per feature, the missing-value bin included."""
        return [len(c) + 2 for c in self.cuts]

    def transform(self, X: np.ndarray) -> np.ndarray:
        out = np.empty(X.shape, dtype=np.uint8)
        for j, cuts in enumerate(self.cuts):
            out[:, j] = column_codes(cuts, X[:, j])
        return out


def column_codes(cuts: np.ndarray, col: np.ndarray) -> np.ndarray:
    """Bin of every value of one feature under ``cuts`` (missing: the last bin)."""
    b = np.searchsorted(cuts, col, side="right")
    b[np.isnan(col)] = len(cuts) + 1
    return b


@runtime_checkable
class ColumnTable(Protocol):
    """Feature columns read one at a time (a streamed dataset's, :mod:`misuan.node.column_store`):
    what the parties take instead of a matrix when the whole float table should not be in memory."""

    names: list[str]

    @property
    def n_rows(self) -> int: ...

    def column(self, j: int) -> np.ndarray: ...


def binned_features(X: Any, max_bin: int) -> tuple[QuantileBinner, np.ndarray, list[str]]:
    """``X``'s quantile binner, its bin codes (uint8, rows x features) and its column names.

    ``X`` is a matrix or DataFrame (:func:`as_matrix`), or a :class:`ColumnTable`, binned a column at
    a time so that only one column of floats is in memory: the same cuts and codes either way.
    """
    binner = QuantileBinner(max_bin)
    if not isinstance(X, ColumnTable):
        arr, names = as_matrix(X)
        return binner.fit(arr), binner.transform(arr), names
    codes = np.empty((X.n_rows, len(X.names)), dtype=np.uint8)
    for j, name in enumerate(X.names):
        col = np.asarray(X.column(j), dtype=np.float64)
        if np.isinf(col).any():
            raise DataError(f"feature {name!r} contains infinite values: replace them with NaN (missing) or clip them")
        cuts = binner.column_cuts(col)
        binner.cuts.append(cuts)
        codes[:, j] = column_codes(cuts, col)
    return binner, codes, list(X.names)


@dataclasses.dataclass
class PartyBins:
    """One party's binned features as the label party knows them: names and bins, never thresholds.

    A party's per-bin sums lie in one flat vector: feature ``f`` holds ``[offsets[f], offsets[f+1])``.
    """

    party: str
    names: list[str]
    n_bins: list[int]  # per feature, the missing-value bin included
    mask: np.ndarray  # bool: the features sampled for the current tree
    # int8 per feature: 1 increasing, -1 decreasing, 0 none (XGBoost's monotone constraints); empty: none
    monotone: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, dtype=np.int8))
    offsets: np.ndarray = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.offsets = np.concatenate([[0], np.cumsum(self.n_bins)]).astype(np.int64)
        if len(self.monotone) == 0:
            self.monotone = np.zeros(len(self.n_bins), dtype=np.int8)

    @property
    def width(self) -> int:
        """Length of the flat per-bin vector (all bins of all features)."""
        return int(self.offsets[-1])


def as_matrix(X: Any) -> tuple[np.ndarray, list[str]]:
    """``X`` (a DataFrame or an array) as a float matrix, with its column names (``x0``, ... if none)."""
    names = [str(c) for c in X.columns] if hasattr(X, "columns") else None
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim != 2:
        raise DataError(f"features must be a 2-d table, got shape {arr.shape}")
    if np.isinf(arr).any():
        raise DataError("features contain infinite values: replace them with NaN (missing) or clip them")
    return arr, names or [f"x{j}" for j in range(arr.shape[1])]
