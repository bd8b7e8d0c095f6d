"""Joint descriptive statistics over the intersection: each party summarises its own columns.

Each party computes, on its own rows of the intersection (already aligned by PSI), per numeric
column: the missing rate, mean, sample standard deviation and a few quantiles. It then sends the
peer the summaries of exactly the columns its user listed in ``share`` (nothing when ``share`` is
empty) and receives the peer's. No row crosses; there is no cryptography beyond the channel's TLS.

Small-cell rule: a column with fewer than ``min_count`` non-missing values has its mean, standard
deviation and quantiles withheld (NaN), since with one or two values they *are* the values.

Security model: semi-honest. Leakage: to the peer, for each shared column, the row count (known from
PSI), the missing rate, mean, standard deviation and the requested quantiles. Quantiles are order
statistics (interpolated between two neighbouring values), so each is close to the value of some
customer without saying whose; the defaults leave out the minimum and maximum for that reason.
Ledger (both sides): per shared column ``summary statistics of <column>`` (aggregate).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from misuan.errors import ConfigError, DataError, MalformedMessageError
from misuan.net import wire
from misuan.net.channel import Channel
from misuan.protocols.binning import feature_columns

__all__ = ["ColumnSummary", "DescribeResult", "SharedSummaries", "describe_columns", "joint_describe"]

STEP = "describe"
DEFAULT_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
MAX_COLUMNS = 100_000
MAX_LEVELS = 99


@dataclasses.dataclass(frozen=True)
class ColumnSummary:
    column: str
    n_rows: int
    missing_rate: float
    mean: float  # NaN when withheld (fewer than min_count values) or no values
    std: float
    quantiles: dict[str, float]  # "q0.25" -> value

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        # JSON has no NaN: a withheld statistic is null
        for k in ("mean", "std"):
            d[k] = None if math.isnan(d[k]) else d[k]
        d["quantiles"] = {k: None if math.isnan(v) else v for k, v in self.quantiles.items()}
        return d


@dataclasses.dataclass(frozen=True)
class DescribeResult:
    own: dict[str, ColumnSummary]
    peer: dict[str, ColumnSummary]

    def to_dict(self) -> dict[str, Any]:
        return {
            "own": {k: v.to_dict() for k, v in self.own.items()},
            "peer": {k: v.to_dict() for k, v in self.peer.items()},
        }


@wire.message("describe.SharedSummaries")
@dataclasses.dataclass
class SharedSummaries:
    n_rows: int
    columns: list[str]
    levels: np.ndarray  # float64 quantile levels in (0, 1), increasing
    missing_rate: np.ndarray  # float64 per column
    mean: np.ndarray
    std: np.ndarray
    quantiles: np.ndarray  # float64 (columns, levels)


def _level_name(q: float) -> str:
    return f"q{q:g}"


def _check_levels(levels: Sequence[float] | np.ndarray) -> np.ndarray:
    arr = np.asarray(levels, np.float64)
    if arr.ndim != 1 or arr.size > MAX_LEVELS or np.any((arr <= 0) | (arr >= 1)) or np.any(np.diff(arr) <= 0):
        raise ValueError(
            f"quantile levels must be at most {MAX_LEVELS} increasing numbers strictly between 0 and 1"
        )
    return arr


def describe_columns(
    data: pd.DataFrame | Mapping[str, Any],
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    min_count: int = 5,
) -> dict[str, ColumnSummary]:
    """Summaries of every numeric column of one party's data (a local computation)."""
    try:
        levels = _check_levels(quantiles)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    if min_count < 1:
        raise ConfigError(f"min_count must be at least 1, not {min_count}")
    out = {}
    for name, x in feature_columns(data).items():
        present = x[~np.isnan(x)]
        n = len(x)
        enough = present.size >= max(min_count, 2)
        qs = np.quantile(present, levels) if enough else np.full(len(levels), np.nan)
        out[name] = ColumnSummary(
            column=name,
            n_rows=n,
            missing_rate=float(1 - present.size / n) if n else math.nan,
            mean=float(present.mean()) if enough else math.nan,
            std=float(present.std(ddof=1)) if enough else math.nan,
            quantiles={_level_name(q): float(v) for q, v in zip(levels, qs, strict=True)},
        )
    return out


def joint_describe(
    chan: Channel,
    peer: str,
    data: pd.DataFrame | Mapping[str, Any],
    *,
    share: Sequence[str] | Literal["all"] = (),
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    min_count: int = 5,
    step: str = STEP,
) -> DescribeResult:
    """Summarise own columns, send the peer those in ``share``, receive the peer's shared summaries.

    Both parties call this (it is symmetric); rows must be the intersection in the common order.
    """
    own = describe_columns(data, quantiles, min_count)
    names = list(own) if share == "all" else list(share)
    unknown = [c for c in names if c not in own]
    if unknown or len(set(names)) != len(names):
        raise ConfigError(
            f"share lists columns that are not numeric columns of this party (or repeats): {unknown}"
        )
    n_rows = next(iter(own.values())).n_rows if own else len(data)
    levels = _check_levels(quantiles)
    sent = [own[c] for c in names]
    chan.send(
        peer,
        step,
        SharedSummaries(
            n_rows=n_rows,
            columns=names,
            levels=levels,
            missing_rate=np.array([s.missing_rate for s in sent], np.float64),
            mean=np.array([s.mean for s in sent], np.float64),
            std=np.array([s.std for s in sent], np.float64),
            quantiles=np.array(
                [[s.quantiles[_level_name(q)] for q in levels] for s in sent], np.float64
            ).reshape(len(sent), len(levels)),
        ),
    )
    for c in names:
        chan.disclose(
            step, chan.party, peer, f"summary statistics of {c}", (3 + len(levels),), form="aggregate"
        )
    msg = chan.recv(peer, step, expect=SharedSummaries)
    theirs = _check_summaries(msg, n_rows, peer)
    for c in theirs:
        chan.disclose(
            step, peer, chan.party, f"summary statistics of {c}", (3 + len(msg.levels),), form="aggregate"
        )
    return DescribeResult(own=own, peer=theirs)


def _check_summaries(msg: SharedSummaries, n_rows: int, peer: str) -> dict[str, ColumnSummary]:
    k = len(msg.columns)
    if msg.n_rows != n_rows:
        raise DataError(
            f"{peer} describes {msg.n_rows} rows, this party {n_rows}: both must pass the intersection"
        )
    if k > MAX_COLUMNS or len(set(msg.columns)) != k or not all(0 < len(c) <= 256 for c in msg.columns):
        raise MalformedMessageError(f"{peer} sent {k} column names with duplicates, empty or over-long names")
    try:
        levels = (
            _check_levels(msg.levels)
            if isinstance(msg.levels, np.ndarray) and msg.levels.dtype == np.float64
            else None
        )
    except ValueError:
        levels = None
    if levels is None:
        raise MalformedMessageError(
            f"{peer} sent quantile levels that are not increasing float64 values in (0, 1)"
        )
    for name in ("missing_rate", "mean", "std"):
        arr = getattr(msg, name)
        if not isinstance(arr, np.ndarray) or arr.dtype != np.float64 or arr.shape != (k,):
            raise MalformedMessageError(f"{peer} sent {name} that is not float64 of shape ({k},)")
    q = msg.quantiles
    if not isinstance(q, np.ndarray) or q.dtype != np.float64 or q.shape != (k, len(levels)):
        raise MalformedMessageError(
            f"{peer} sent quantiles that are not float64 of shape ({k}, {len(levels)})"
        )
    if np.any(~((msg.missing_rate >= 0) & (msg.missing_rate <= 1))) or np.any(msg.std < 0):
        raise MalformedMessageError(
            f"{peer} sent a missing rate outside [0, 1] or a negative standard deviation"
        )
    if np.any(np.isinf(msg.mean)) or np.any(np.isinf(msg.std)) or np.any(np.isinf(q)):
        raise MalformedMessageError(f"{peer} sent infinite statistics")
    return {
        c: ColumnSummary(
            column=c,
            n_rows=msg.n_rows,
            missing_rate=float(msg.missing_rate[i]),
            mean=float(msg.mean[i]),
            std=float(msg.std[i]),
            quantiles={_level_name(float(lv)): float(v) for lv, v in zip(levels, q[i], strict=True)},
        )
        for i, c in enumerate(msg.columns)
    }
