"""Horizontal binning and WOE/IV over secure aggregation equal the same table on the pooled rows."""

from __future__ import annotations

from typing import Any

import numpy as np

from misuan.ml.horizontal_binning import bin_values, woe_as_aggregator, woe_as_data_party
from misuan.net.local import run_local


def test_pooled_bins_woe_and_iv_without_pooling() -> None:
    rng = np.random.default_rng(5)
    n = 4000
    x = np.column_stack([rng.normal(50, 10, n), rng.exponential(3.0, n), rng.integers(0, 4, n).astype(float)])
    x[rng.random(n) < 0.1, 1] = np.nan
    y = (rng.random(n) < 1 / (1 + np.exp(-(x[:, 0] - 50) / 8))).astype(float)
    cuts, lenders = [0, 300, 1400, 2500, 4000], ["bank_a", "bank_b", "bank_c", "bank_d"]
    fns: dict[str, Any] = {
        p: (lambda c, i=i: woe_as_data_party(c, x[cuts[i] : cuts[i + 1]], y[cuts[i] : cuts[i + 1]], aggregator="hub",
                                             data_parties=lenders, max_bin=8))
        for i, p in enumerate(lenders)
    }
    fns["hub"] = lambda c: woe_as_aggregator(c, 3, data_parties=lenders, max_bin=8)
    out = run_local(fns, job_id="hwoe-test")
    table = out["hub"].result
    for p in lenders:
        assert np.array_equal(out[p].result.woe, table.woe) and np.array_equal(out[p].result.iv, table.iv)
    # the same counts as binning the pooled rows with the agreed edges
    b = bin_values(x, table.edges)
    for f in range(3):
        assert np.array_equal(np.bincount(b[y == 1, f], minlength=9), table.bads[f])
        assert np.array_equal(np.bincount(b[y == 0, f], minlength=9), table.goods[f])
    # the cuts of the continuous feature sit at its pooled quantiles, within a fine cell
    q = np.quantile(x[:, 0], np.arange(1, 8) / 8)
    assert np.allclose(table.edges[0], q, atol=16 * 10 / 1024 * 1.5)
    assert table.iv[0] > table.iv[2]  # the feature that drives the default rate carries the information
    assert table.transform(x[:5]).shape == (5, 3)
