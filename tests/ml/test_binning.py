from __future__ import annotations

import numpy as np
import pytest

from misuan.errors import ConfigError, DataError
from misuan.protocols.woe import WoeParams
from misuan.protocols.woe.binning import (
    FeatureBins,
    check_starts,
    chimerge_starts,
    equal_width_cuts,
    fit_bins,
    merge_counts,
    quantile_cuts,
    tree_starts,
    unsupervised_bins,
)


def test_quantile_cuts_are_observed_values_and_bins_are_right_closed() -> None:
    x = np.arange(1.0, 11.0)  # 1..10
    cuts = quantile_cuts(x, 2)
    assert cuts.tolist() == [5.0]
    bins = fit_bins(x, cuts, 1)
    assert bins.assign(x).tolist() == [0] * 5 + [1] * 5
    assert bins.labels() == ["(-inf, 5]", "(5, inf)"]


def test_equal_width_cuts() -> None:
    assert equal_width_cuts(np.array([0.0, 10.0, np.nan]), 4).tolist() == [2.5, 5.0, 7.5]
    assert equal_width_cuts(np.array([3.0, 3.0]), 4).size == 0


@pytest.mark.parametrize("method", ["quantile", "equal_width", "chimerge", "tree"])
@pytest.mark.parametrize("min_size", [1, 5, 25])
def test_no_bin_below_min_size_on_skewed_data(method: str, min_size: int) -> None:
    rng = np.random.default_rng(min_size)
    x = np.concatenate([rng.exponential(1.0, 300) ** 3, [1e6, 2e6], [np.nan] * 3])
    cfg = WoeParams(method=method, n_bins=10, n_prebins=40, min_bin_size=min_size)  # type: ignore[arg-type]
    bins = unsupervised_bins(x, method, cfg)
    counts = np.bincount(bins.assign(x), minlength=bins.n_bins)
    assert counts.sum() == len(x)
    assert bins.n_bins == 1 or counts.min() >= min_size
    # three missing values: a bin of their own only when that bin is big enough
    assert bins.has_missing_bin == (min_size <= 3)


def test_small_missing_group_joins_smallest_value_bin_and_small_value_group_joins_missing() -> None:
    x = np.array([1.0] * 10 + [2.0] * 6 + [np.nan] * 2)
    bins = fit_bins(x, np.array([1.0]), 5)
    assert bins.n_value_bins == 2 and bins.missing_bin == 1 and bins.labels()[1] == "(1, inf) + missing"
    x2 = np.array([1.0, 2.0] + [np.nan] * 10)
    one = fit_bins(x2, np.array([1.0]), 5)
    assert one.n_bins == 1 and one.missing_bin == 0
    assert one.assign(x2).tolist() == [0] * 12


@pytest.mark.parametrize("method", ["quantile", "equal_width"])
def test_infinite_values_fall_in_the_end_bins(method: str) -> None:
    x = np.concatenate([[-np.inf] * 30, np.arange(40.0), [np.inf] * 30])
    bins = unsupervised_bins(x, method, WoeParams(n_bins=4))
    assert np.all(np.isfinite(bins.cuts)) and bins.n_value_bins >= 2
    codes = bins.assign(x)
    assert codes[0] == 0 and codes[-1] == bins.n_value_bins - 1


def test_constant_all_missing_and_single_row_features() -> None:
    cfg = WoeParams()
    const = unsupervised_bins(np.full(50, 7.0), "quantile", cfg)
    assert const.n_bins == 1 and const.cuts.size == 0
    allnan = unsupervised_bins(np.full(8, np.nan), "equal_width", cfg)
    assert allnan.n_value_bins == 0 and allnan.n_bins == 1 and allnan.labels() == ["missing"]
    assert allnan.assign(np.full(8, np.nan)).tolist() == [0] * 8
    tiny = unsupervised_bins(np.array([1.0, 2.0, 3.0]), "quantile", cfg)
    assert tiny.n_bins == 1  # the whole intersection, fewer rows than min_bin_size


def test_chimerge_merges_most_similar_neighbours() -> None:
    counts = np.array([10, 10, 10, 10])
    positives = np.array([1, 1, 9, 9])
    assert chimerge_starts(counts, positives, 2).tolist() == [0, 2]
    assert chimerge_starts(counts, positives, 4).tolist() == [0, 1, 2, 3]
    # with a threshold, identical neighbours (chi2 = 0) merge even under max_bins
    assert chimerge_starts(counts, positives, 4, threshold=3.84).tolist() == [0, 2]


def test_tree_splits_where_the_rate_changes() -> None:
    counts = np.array([10] * 6)
    positives = np.array([0, 0, 0, 10, 10, 10])
    assert tree_starts(counts, positives, 5).tolist() == [0, 3]
    assert tree_starts(counts, np.array([5] * 6), 5).tolist() == [0]  # no split gains anything


def test_merged_bins_and_counts() -> None:
    x = np.array([1.0] * 5 + [2.0] * 5 + [3.0] * 5 + [np.nan] * 5)
    pre = fit_bins(x, np.array([1.0, 2.0]), 5)
    assert pre.n_value_bins == 3 and pre.has_missing_bin
    final = pre.merged(np.array([0, 2]))
    assert final.cuts.tolist() == [2.0] and final.n_bins == 3 and final.missing_bin == 2
    counts = np.bincount(pre.assign(x))
    assert (
        merge_counts(pre, np.array([0, 2]), counts).tolist()
        == np.bincount(final.assign(x)).tolist()
        == [10, 5, 5]
    )


@pytest.mark.parametrize("starts", [[1, 2], [0, 0], [0, 3], [0, 2, 1], [0.0, 1.0]])
def test_bad_merge_starts_refused(starts: list[float]) -> None:
    with pytest.raises(ValueError):
        check_starts(np.array(starts), 3, 10)


def test_pandas_nullable_columns_read_as_float_with_missing() -> None:
    import pandas as pd

    from misuan.protocols.woe.binning import float_columns

    df = pd.DataFrame(
        {"i": pd.array([1, None, 3], dtype="Int64"), "b": pd.array([True, None, False], dtype="boolean")}
    )
    cols = float_columns(df)
    assert np.isnan(cols["i"][1]) and cols["i"][2] == 3.0 and cols["b"].tolist()[::2] == [1.0, 0.0]


def test_config_validation_and_non_numeric_feature() -> None:
    with pytest.raises(ConfigError, match="method"):
        WoeParams(method="kmeans")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="min_bin_size"):
        WoeParams(min_bin_size=0)
    with pytest.raises(ConfigError, match="n_prebins"):
        WoeParams(n_bins=20, n_prebins=10)
    with pytest.raises(DataError, match="not numeric"):
        FeatureBins(np.empty(0), 1, None).assign(np.array(["a", "b"]))
