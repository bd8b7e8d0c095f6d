"""Horizontal gradient boosting over secure aggregation against XGBoost on the pooled rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import xgboost as xgb
from sklearn.datasets import make_classification
from sklearn.metrics import roc_auc_score

from misuan.ml.horizontal_gbdt import HorizontalGBDTParams, fit_as_aggregator, fit_as_data_party
from misuan.net.local import run_local


def test_federated_boosting_matches_pooled_xgboost() -> None:
    x, y = make_classification(n_samples=8000, n_features=10, n_informative=6, weights=[0.8], random_state=7)
    x[np.random.default_rng(1).random(x.shape) < 0.05] = np.nan  # some values missing
    x_train, y_train, x_test, y_test = x[:6000], y[:6000], x[6000:], y[6000:]
    cuts = [0, 500, 1700, 3000, 4200, 6000]  # five lenders of different sizes
    lenders = [f"lender{i}" for i in range(5)]
    params = HorizontalGBDTParams(n_estimators=10, max_depth=4, learning_rate=0.3, max_bin=32)
    fns: dict[str, Any] = {
        p: (lambda c, i=i: fit_as_data_party(c, x_train[cuts[i] : cuts[i + 1]], y_train[cuts[i] : cuts[i + 1]],
                                             aggregator="hub", data_parties=lenders, params=params))
        for i, p in enumerate(lenders)
    }
    fns["hub"] = lambda c: fit_as_aggregator(c, x.shape[1], data_parties=lenders, params=params)
    out = run_local(fns, job_id="hgb-test")
    models = [out[p].result for p in [*lenders, "hub"]]
    margins = [m.predict_margin(x_test) for m in models]
    assert all(np.array_equal(m, margins[-1]) for m in margins)  # one model at every party
    pooled = xgb.XGBClassifier(n_estimators=10, max_depth=4, learning_rate=0.3, max_bin=32, tree_method="hist",
                               reg_lambda=1.0, min_child_weight=1.0, base_score=0.5).fit(x_train, y_train)
    auc_fed = roc_auc_score(y_test, models[-1].predict_proba(x_test))
    auc_xgb = roc_auc_score(y_test, pooled.predict_proba(x_test)[:, 1])
    print(f"federated AUC {auc_fed:.4f}, pooled XGBoost {auc_xgb:.4f}")
    assert abs(auc_fed - auc_xgb) < 0.005, (auc_fed, auc_xgb)
    assert models[-1].contributors == lenders and models[-1].rounds <= 3 + 10 * (1 + 4)
    # each lender alone does worse than the federation on the same test rows
    alone = xgb.XGBClassifier(n_estimators=10, max_depth=4, learning_rate=0.3, max_bin=32).fit(x_train[:500], y_train[:500])
    assert roc_auc_score(y_test, alone.predict_proba(x_test)[:, 1]) < auc_fed


def test_split_finding_edge_cases() -> None:
    from misuan.ml.horizontal_gbdt import _best_split

    # a feature that is 1 or missing: only "missing vs present" separates the rows
    hist = np.zeros((1, 4, 2))
    hist[0, 0] = [-30.0, 20.0]  # the present rows, all in bin 0 (bins 1, 2 empty), mostly bads
    hist[0, 3] = [25.0, 20.0]  # the missing rows, mostly goods
    gain, f, cut, missing_left = _best_split(hist, -5.0, 40.0, HorizontalGBDTParams(max_bin=3))
    assert gain > 0 and f == 0 and ((cut == 2 and not missing_left) or (cut == -1 and missing_left))
    # lambda 0 and min_child_weight 0: an empty side is not 0/0 = NaN winning the argmax
    p0 = HorizontalGBDTParams(max_bin=3, reg_lambda=0.0, min_child_weight=0.0)
    hist = np.zeros((1, 4, 2))
    hist[0, 0], hist[0, 2] = [-10.0, 5.0], [8.0, 5.0]
    gain, f, cut, _ = _best_split(hist, -2.0, 10.0, p0)
    assert abs(gain - 0.5 * (100 / 5 + 64 / 5 - 4 / 10)) < 1e-9 and cut in (0, 1)
