"""The plaintext twin of the secure WOE/IV protocol: the same binning on joined data.

:func:`woe_iv_plaintext` bins each feature with the functions the feature party uses, counts
positives per bin directly from the labels (which the protocol gets by homomorphic sums), lets the
same merge rule decide supervised bins, and builds the same :class:`WoeResult`. Tests assert that
the protocol's result equals this one; the benchmark uses it as its baseline. It needs both the
features and the labels in one place, so it is for tests, benchmarks and data that one party owns.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from misuan.errors import DataError
from misuan.protocols.woe.binning import (
    FeatureBins,
    iter_float_columns,
    merge_counts,
    merge_prebins,
    unsupervised_bins,
)
from misuan.protocols.woe.params import SUPERVISED, WoeParams
from misuan.protocols.woe.table import FeatureWoe, WoeResult, check_labels, feature_woe

__all__ = ["woe_iv_feature", "woe_iv_plaintext"]


def woe_iv_feature(
    name: str, x: np.ndarray, y: np.ndarray, params: WoeParams
) -> tuple[FeatureBins, FeatureWoe]:
    """Bin one feature and compute its WOE/IV/KS on plaintext labels."""
    method = params.method_for(name)
    bins = unsupervised_bins(x, method, params)
    codes = bins.assign(x)
    counts = np.bincount(codes, minlength=bins.n_bins).astype(np.int64)
    positives = np.bincount(codes, weights=y, minlength=bins.n_bins).astype(np.int64)
    if method in SUPERVISED:
        starts = merge_prebins(method, bins, counts, positives, params)
        counts, positives = merge_counts(bins, starts, counts), merge_counts(bins, starts, positives)
        bins = bins.merged(starts)
    return bins, feature_woe(name, method, bins, counts, positives, params.smoothing, params.share_edges)


def woe_iv_plaintext(
    features: pd.DataFrame | Mapping[str, object], labels: object, params: WoeParams | None = None
) -> WoeResult:
    """WOE/IV/KS of every feature against ``labels`` (rows aligned), computed in the clear."""
    params = params or WoeParams()
    y = check_labels(labels)
    out = []
    for name, x in iter_float_columns(features):  # one column in memory at a time
        if len(x) != len(y):
            raise DataError(f"feature {name!r} has {len(x)} rows, the labels {len(y)}")
        out.append(woe_iv_feature(name, x, y, params)[1])
    return WoeResult(features=out, n_rows=int(len(y)), n_positives=int(y.sum()))
