"""Population stability index (PSI-index) of a feature between two snapshots.

Named ``population_stability_index`` throughout, never "PSI", which in misuan means private set
intersection. It is a local computation by the party that holds both snapshots of its own feature.

With shares ``e_i`` (expected / baseline snapshot) and ``a_i`` (actual / recent snapshot) of rows in
bin ``i``:

    PSI-index = sum_i (a_i - e_i) * ln(a_i / e_i)

Bins are quantile bins of the *expected* snapshot (or cuts you give), with missing values in a bin of
their own when either snapshot has any. A share of 0 is floored at ``epsilon`` so the sum stays
finite. Common reading: below 0.1 stable, 0.1 to 0.25 a moderate shift, above 0.25 a large shift.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from misuan.errors import ConfigError, DataError
from misuan.protocols.woe.binning import FeatureBins, as_numeric, quantile_cuts

__all__ = ["StabilityResult", "population_stability_index"]


@dataclasses.dataclass(frozen=True)
class StabilityResult:
    value: float
    labels: list[str]
    expected_share: list[float]
    actual_share: list[float]
    contributions: list[float]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def population_stability_index(
    expected: Sequence[float] | np.ndarray,
    actual: Sequence[float] | np.ndarray,
    *,
    n_bins: int = 10,
    cuts: Sequence[float] | None = None,
    epsilon: float = 1e-4,
) -> StabilityResult:
    """PSI-index of ``actual`` against the baseline ``expected``; see the module docstring."""
    e = as_numeric(np.asarray(expected), "expected")
    a = as_numeric(np.asarray(actual), "actual")
    if e.size == 0 or a.size == 0:
        raise DataError("both snapshots need at least one row for a population stability index")
    if not 0 < epsilon < 1:
        raise ConfigError(f"epsilon must lie in (0, 1), not {epsilon}")
    if cuts is None:
        if n_bins < 1:
            raise ConfigError(f"n_bins must be at least 1, not {n_bins}")
        cut_arr = quantile_cuts(e, n_bins)
    else:
        cut_arr = np.asarray(cuts, np.float64)
        if cut_arr.ndim != 1 or np.any(np.diff(cut_arr) <= 0) or not np.all(np.isfinite(cut_arr)):
            raise ConfigError("cuts must be finite and strictly increasing")
    any_missing = bool(np.isnan(e).any() or np.isnan(a).any())
    n_value = len(cut_arr) + 1
    bins = FeatureBins(cut_arr, n_value, n_value if any_missing else None)
    e_share = np.bincount(bins.assign(e), minlength=bins.n_bins) / e.size
    a_share = np.bincount(bins.assign(a), minlength=bins.n_bins) / a.size
    ef, af = np.maximum(e_share, epsilon), np.maximum(a_share, epsilon)
    contrib = (af - ef) * np.log(af / ef)
    value = float(contrib.sum())
    return StabilityResult(
        value=value if math.isfinite(value) else math.inf,
        labels=bins.labels(),
        expected_share=e_share.tolist(),
        actual_share=a_share.tolist(),
        contributions=contrib.tolist(),
    )
