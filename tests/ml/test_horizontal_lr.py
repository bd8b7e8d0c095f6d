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


def test_a_lender_leaving_mid_fit_stops_the_fit_everywhere_without_a_partial_sum() -> None:
    from misuan.errors import NetworkError, PartyDroppedError
    from misuan.net.channel import Channel

    x, y = make_classification(n_samples=900, n_features=4, random_state=2)
    lenders = ["l0", "l1", "l2", "l3"]
    rows = {p: slice(225 * i, 225 * (i + 1)) for i, p in enumerate(lenders)}

    def leaving(c: Channel) -> None:
        # the first two rounds as everyone, then the link goes (the fit must not go on with three)
        from misuan.ml.horizontal_lr import _local_sums
        from misuan.ml.horizontal_rounds import FitRounds
        from misuan.protocols.secagg import aggregate_as_data_party

        rounds = FitRounds(c, aggregator="hub", data_parties=lenders, step="hlr", context="")
        for k in range(2):
            aggregate_as_data_party(c, _local_sums(x[rows["l3"]], y[rows["l3"]], np.zeros(5)) * 0, "hub", lenders,
                                    rounds.params, f"hlr/{k}", context="horizontal-lr v1 features=4 C=1.0 max_iter=30 tol=1e-06")

    fns: dict[str, Any] = {
        p: (lambda c, p=p: fit_as_data_party(c, x[rows[p]], y[rows[p]], aggregator="hub", data_parties=lenders,
                                             round_timeout_s=3.0))
        for p in lenders[:3]
    }
    fns["l3"] = leaving
    fns["hub"] = lambda c: fit_as_aggregator(c, 4, data_parties=lenders, round_timeout_s=3.0)
    out = run_local(fns, job_id="hlr-drop", raise_errors=False, timeout_s=60)
    assert isinstance(out["hub"].error, PartyDroppedError)
    for p in lenders[:3]:  # the others stop too (the aggregator releases no sum of the three)
        assert isinstance(out[p].error, NetworkError)
    recorded = [d for d in out["hub"].disclosures if d.step == "hlr/2" and "sum of" in d.what]
    assert not recorded  # nothing summed in the round the lender was missing from
