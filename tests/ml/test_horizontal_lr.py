"""Horizontal logistic regression over secure aggregation equals scikit-learn on the pooled rows."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from misuan.ml.horizontal_lr import fit_as_aggregator, fit_as_data_party
from misuan.net.local import run_local


def test_federated_lr_matches_pooled_scikit_learn() -> None:
    x, y = make_classification(n_samples=6000, n_features=8, n_informative=5, weights=[0.8], random_state=4)
    x_train, y_train, x_test, y_test = x[:5000], y[:5000], x[5000:], y[5000:]
    cuts = [0, 400, 1500, 2600, 5000]  # four lenders of different sizes
    lenders = [f"lender{i}" for i in range(4)]
    rows = {p: slice(cuts[i], cuts[i + 1]) for i, p in enumerate(lenders)}
    fns: dict[str, Any] = {
        p: (lambda c, p=p: fit_as_data_party(c, x_train[rows[p]], y_train[rows[p]], aggregator="hub",
                                             data_parties=lenders, c=0.5))
        for p in lenders
    }
    fns["hub"] = lambda c: fit_as_aggregator(c, x.shape[1], data_parties=lenders, c=0.5)
    out = run_local(fns, job_id="hlr-test")
    pooled = LogisticRegression(C=0.5, tol=1e-10, max_iter=1000).fit(x_train, y_train)
    models = [out[p].result for p in [*lenders, "hub"]]
    for m in models:  # every party holds the same model
        assert np.allclose(m.coef, models[-1].coef, atol=1e-12) and m.intercept == models[-1].intercept
    fed = models[-1]
    assert fed.n_rows == 5000 and fed.iterations < 15 and fed.contributors == lenders
    assert np.allclose(fed.coef, pooled.coef_[0], rtol=1e-4, atol=1e-5)
    assert abs(fed.intercept - pooled.intercept_[0]) < 1e-4
    auc_fed = roc_auc_score(y_test, fed.predict_proba(x_test))
    auc_pooled = roc_auc_score(y_test, pooled.predict_proba(x_test)[:, 1])
    assert abs(auc_fed - auc_pooled) < 0.002
    # the losses fall round after round; what each lender disclosed is secure aggregation's, per round
    assert all(b <= a + 1e-12 for a, b in zip(fed.loss, fed.loss[1:], strict=False))
    assert {d.step.split("/")[0] for d in out["lender1"].disclosures} == {"hlr"}
