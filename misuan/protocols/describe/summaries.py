"""One party's column summaries: a local computation, the same on both sides."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from misuan.protocols.describe.params import DEFAULT_QUANTILES, DescribeParams, check_levels
from misuan.protocols.woe.binning import float_columns


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


def level_name(q: float) -> str:
    return f"q{q:g}"


def describe_columns(
    data: pd.DataFrame | Mapping[str, Any],
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    min_count: int = 5,
) -> dict[str, ColumnSummary]:
    """Summaries of every numeric column of one party's data (a local computation)."""
    params = DescribeParams(quantiles=tuple(quantiles), min_count=min_count)
    levels = check_levels(params.quantiles)
    out = {}
    for name, x in float_columns(data).items():
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
            quantiles={level_name(q): float(v) for q, v in zip(levels, qs, strict=True)},
        )
    return out
