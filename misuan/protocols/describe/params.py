"""Joint describe's parameters, declared once (:mod:`misuan.params`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal

import numpy as np

from misuan.params import ParamError, check_params, param

DEFAULT_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
MAX_LEVELS = 99


def check_levels(levels: Sequence[float] | np.ndarray) -> np.ndarray:
    """``levels`` as float64, or ValueError unless at most ``MAX_LEVELS`` increasing values in (0, 1)."""
    arr = np.asarray(levels, np.float64)
    if arr.ndim != 1 or arr.size > MAX_LEVELS or np.any((arr <= 0) | (arr >= 1)) or np.any(np.diff(arr) <= 0):
        raise ValueError(
            f"quantile levels must be at most {MAX_LEVELS} increasing numbers strictly between 0 and 1"
        )
    return arr


@dataclasses.dataclass(frozen=True)
class DescribeParams:
    share: tuple[str, ...] | Literal["all"] = param(
        (), 'columns whose summaries the peer receives: a list of names, or "all" (default: none)'
    )
    quantiles: tuple[float, ...] = param(
        DEFAULT_QUANTILES, f"quantile levels: at most {MAX_LEVELS} increasing numbers strictly between 0 and 1"
    )
    min_count: int = param(5, "a column with fewer non-missing values has its mean, std and quantiles withheld", ge=1)

    def __post_init__(self) -> None:
        check_params(self, "describe")
        try:
            check_levels(self.quantiles)
        except ValueError:
            raise ParamError(
                "quantiles", f"must be at most {MAX_LEVELS} increasing numbers strictly between 0 and 1", "describe"
            ) from None
