"""The scikit-learn-style horizontal estimators: the same fit as the functions, local prediction, JSON round trips."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.datasets import make_classification

from misuan.errors import ConfigError, DataError
from misuan.ml.horizontal import HorizontalGBDTClassifier, HorizontalLogisticRegression, HorizontalWoeBinning
from misuan.ml.horizontal_lr import fit_as_data_party
from misuan.net.local import run_local

LENDERS = ["lender0", "lender1", "lender2"]
X, Y = make_classification(n_samples=1800, n_features=5, n_informative=3, weights=[0.8], random_state=2)
ROWS = {p: slice(600 * i, 600 * (i + 1)) for i, p in enumerate(LENDERS)}


def _fit_all(make: Any, transform: Any = None) -> dict[str, Any]:
    def party(p: str) -> Any:
        def fn(chan: Any) -> Any:
            est = make()
            if p == "hub":
                return est.fit(X.shape[1] if transform is None else transform(None), channel=chan, aggregator="hub",
                               data_parties=LENDERS)
            x = X[ROWS[p]] if transform is None else transform(X[ROWS[p]])
            return est.fit(x, Y[ROWS[p]], channel=chan, aggregator="hub", data_parties=LENDERS)
        return fn

    out = run_local({p: party(p) for p in [*LENDERS, "hub"]}, job_id="estimators")
    return {p: o.result for p, o in out.items()}


def test_estimators_fit_the_same_model_everywhere_and_round_trip_as_json() -> None:
    binnings = _fit_all(lambda: HorizontalWoeBinning(max_bin=6))
    b = binnings["hub"]
    assert all(np.array_equal(m.table_.woe, b.table_.woe) for m in binnings.values())
    lrs = _fit_all(lambda: HorizontalLogisticRegression(C=0.5), transform=lambda x: X.shape[1] if x is None else b.transform(x))
    ref = run_local({p: (lambda c, p=p: fit_as_data_party(c, b.transform(X[ROWS[p]]), Y[ROWS[p]], aggregator="hub",
                                                          data_parties=LENDERS, c=0.5)) if p != "hub" else
                     (lambda c: HorizontalLogisticRegression(C=0.5).fit(X.shape[1], channel=c, aggregator="hub",
                                                                         data_parties=LENDERS))
                     for p in [*LENDERS, "hub"]}, job_id="functions")
    assert np.array_equal(lrs["lender1"].coef_, ref["lender1"].result.coef)  # the estimator is the function
    lr = HorizontalLogisticRegression.from_dict(lrs["lender2"].to_dict())
    p = lr.predict_proba(b.transform(X[:50]))
    assert p.shape == (50, 2) and np.allclose(p, lrs["hub"].predict_proba(b.transform(X[:50])))
    again = HorizontalWoeBinning.from_dict(b.to_dict())
    assert np.array_equal(again.transform(X), b.transform(X))
    trees = _fit_all(lambda: HorizontalGBDTClassifier(n_estimators=2, max_depth=2, max_bin=8))
    model = HorizontalGBDTClassifier.from_dict(trees["lender0"].to_dict())
    assert model.get_params() == trees["hub"].get_params()
    assert np.array_equal(model.predict_proba(X), trees["hub"].predict_proba(X))


def test_estimator_parameters_are_checked_at_fit_and_the_aggregator_passes_no_rows() -> None:
    with pytest.raises(TypeError, match=r"has no parameter\(s\) \['depth'\]"):
        HorizontalGBDTClassifier(depth=3)
    est = HorizontalWoeBinning().set_params(max_bin=1)
    with pytest.raises(ConfigError, match="max_bin"):
        est.checked_params()
    with pytest.raises(ConfigError, match="no parameter 'C'"):
        est.set_params(C=1.0)

    def hub(chan: Any) -> Any:
        return HorizontalLogisticRegression().fit(X, Y, channel=chan, aggregator="hub", data_parties=LENDERS)

    with pytest.raises(DataError, match="the aggregator holds no rows"):
        run_local({"hub": hub, "lender0": lambda c: None}, job_id="agg-rows")
    with pytest.raises(DataError, match="params must be a table"):
        HorizontalLogisticRegression.from_dict({"coef": [1.0]})
    with pytest.raises(DataError, match="its parameters are not HorizontalLogisticRegression's"):
        HorizontalLogisticRegression.from_dict({"params": {"C": -1.0}})
