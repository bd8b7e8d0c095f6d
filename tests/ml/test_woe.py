from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from misuan.errors import DataError
from misuan.ml.stability import population_stability_index
from misuan.ml.woe import woe_iv_plaintext
from misuan.protocols.woe import WoeParams


def test_woe_iv_ks_hand_checked() -> None:
    # bin (-inf, 0]: 8 goods, 2 bads; bin (0, inf): 4 goods, 6 bads; G = 12, B = 8
    x = np.array([0.0] * 10 + [1.0] * 10)
    y = np.array([1, 1] + [0] * 8 + [1] * 6 + [0] * 4)
    res = woe_iv_plaintext({"x": x}, y, WoeParams(n_bins=2, min_bin_size=5))
    f = res["x"]
    assert [b.count for b in f.bins] == [10, 10] and [b.positives for b in f.bins] == [2, 6]
    assert [b.label for b in f.bins] == ["(-inf, 0]", "(0, inf)"]
    assert f.bins[0].woe == pytest.approx(math.log((8 / 12) / (2 / 8)))
    assert f.bins[1].woe == pytest.approx(math.log((4 / 12) / (6 / 8)))
    iv = (8 / 12 - 2 / 8) * math.log(8 / 3) + (4 / 12 - 6 / 8) * math.log(4 / 9)
    assert f.iv == pytest.approx(iv) and f.iv == pytest.approx(0.746567, abs=1e-6)
    assert f.ks == pytest.approx(5 / 12)
    assert f.monotonic and f.trend == "decreasing"


def test_smoothing_only_where_a_cell_is_empty() -> None:
    x = np.array([0.0] * 10 + [1.0] * 10)
    y = np.array([0] * 10 + [1] * 5 + [0] * 5)  # first bin has no bads
    f = woe_iv_plaintext({"x": x}, y, WoeParams(n_bins=2, smoothing=0.5))["x"]
    # goods 10+.5, 5+.5 of 16; bads 0+.5, 5+.5 of 6
    assert f.bins[0].woe == pytest.approx(math.log((10.5 / 16) / (0.5 / 6)))
    assert math.isfinite(f.iv)
    assert f.ks == pytest.approx(10 / 15)  # raw counts: |0 - 10/15|


def test_missing_values_get_their_own_bin_and_table_sorted_by_iv() -> None:
    rng = np.random.default_rng(1)
    n = 400
    y = rng.integers(0, 2, n)
    strong = y + rng.normal(0, 0.5, n)
    strong[:40] = np.nan
    weak = rng.normal(0, 1, n)
    res = woe_iv_plaintext(pd.DataFrame({"weak": weak, "strong": strong}), y, WoeParams(n_bins=5))
    s = res["strong"]
    assert s.bins[-1].label == "missing" and s.bins[-1].count == 40 and s.bins[-1].contains_missing
    assert sum(b.count for b in s.bins) == n
    assert [f.feature for f in res.by_iv()] == ["strong", "weak"]
    table = res.table()
    assert table[0]["feature"] == "strong" and {
        "feature",
        "bin",
        "count",
        "positives",
        "woe",
        "iv",
        "ks",
        "monotonic",
    } <= set(table[0])
    json.dumps(res.to_dict())  # JSON-able, infinities as strings


def test_constant_feature_and_one_class_labels() -> None:
    y = np.array([0, 1] * 10)
    f = woe_iv_plaintext({"c": np.ones(20)}, y)["c"]
    assert len(f.bins) == 1 and f.iv == 0.0 and f.ks == 0.0 and f.monotonic
    with pytest.raises(DataError, match="one class"):
        woe_iv_plaintext({"c": np.ones(20)}, np.zeros(20, int))
    with pytest.raises(DataError, match="0 .* or 1"):
        woe_iv_plaintext({"c": np.ones(3)}, np.array([0, 2, 1]))


def test_population_stability_index_hand_checked() -> None:
    expected = np.arange(1.0, 11.0)
    actual = np.array([1, 2, 3, 4, 5, 6, 7, 8, 1, 2], dtype=float)
    r = population_stability_index(expected, actual, cuts=[5.0])
    assert r.expected_share == [0.5, 0.5] and r.actual_share == [0.7, 0.3]
    want = 0.2 * math.log(0.7 / 0.5) + (-0.2) * math.log(0.3 / 0.5)
    assert r.value == pytest.approx(want) and r.value == pytest.approx(0.1694595, abs=1e-7)
    assert population_stability_index(expected, expected, n_bins=5).value == 0.0


def test_population_stability_index_missing_and_empty_bins() -> None:
    e = np.array([1.0, 2.0, 3.0, 4.0])
    a = np.array([1.0, 1.0, np.nan, np.nan])
    r = population_stability_index(e, a, cuts=[2.0], epsilon=1e-4)
    assert r.labels == ["(-inf, 2]", "(2, inf)", "missing"]
    assert r.actual_share == [0.5, 0.0, 0.5] and r.expected_share == [0.5, 0.5, 0.0]
    want = (1e-4 - 0.5) * math.log(1e-4 / 0.5) + (0.5 - 1e-4) * math.log(0.5 / 1e-4)
    assert r.value == pytest.approx(want)
