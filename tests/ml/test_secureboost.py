from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.metrics import roc_auc_score

from misuan.errors import ConfigError, DataError
from misuan.ml.secureboost import SecureBoostClassifier, fit_local, predict_local
from misuan.net.local import run_local


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(n_samples=2600, n_features=8, n_informative=4, random_state=3)
    bank = pd.DataFrame(X[:, :3], columns=["age", "income", "tenure"])
    partner = pd.DataFrame(X[:, 3:], columns=[f"telco_{i}" for i in range(5)])
    return bank, partner, y


def test_init_stores_hyperparameters_only() -> None:
    est = SecureBoostClassifier(n_estimators=3, max_bin=16)
    assert est.get_params()["n_estimators"] == 3 and est.key_bits == 2048  # the library default stays 2048
    assert not hasattr(est, "model_")
    assert est.monotone_constraints == {} and est.prediction_mode == "leaves"
    est.monotone_constraints["age"] = 1
    assert SecureBoostClassifier().monotone_constraints == {}  # each estimator has its own table
    with pytest.raises(ConfigError):
        est.set_params(bogus=1)
    with pytest.raises(ConfigError):
        est.get_importance()


def test_fit_local_with_worker_processes_predict_save_load(data, tmp_path) -> None:
    bank, partner, y = data
    tr, te = slice(0, 2200), slice(2200, None)
    # n_jobs=2 runs the histogram/encryption worker processes
    est = SecureBoostClassifier(n_estimators=3, max_depth=3, max_bin=16, n_jobs=2, base_score=0.5)
    models, _ = fit_local(est, {"bank": bank.iloc[tr], "partner": partner.iloc[tr]}, y[tr], label_party="bank")
    lp, fp = models["bank"], models["partner"]
    assert lp.role_ == "label_party" and fp.role_ == "feature_party" and lp.n_trees_ == 3
    assert list(lp.feature_names_in_) == ["age", "income", "tenure"]
    assert lp.feature_importances_.shape == (8,) and lp.feature_importances_.sum() == pytest.approx(1.0)
    gains = lp.get_importance("total_gain")
    counts = lp.get_importance("weight")
    assert set(gains) == set(counts) and any(k.startswith("partner:telco_") for k in gains)
    assert fp.get_importance("weight") == {k: v for k, v in counts.items() if k.startswith("partner:")}
    margin = predict_local(models, {"bank": bank.iloc[te], "partner": partner.iloc[te]})
    assert roc_auc_score(y[te], margin) > 0.85
    # per-party JSON parts; the label party's part has no partner threshold, the partner's no leaves
    paths = {p: m.save_model(tmp_path / f"{p}.json") for p, m in models.items()}
    assert not [f for f in tmp_path.iterdir() if f.name.startswith(".")]  # temp files replaced atomically
    bank_doc = json.loads(paths["bank"].read_text())
    partner_doc = json.loads(paths["partner"].read_text())
    assert "telco_" not in json.dumps([nd.get("threshold") for t in bank_doc["model"]["trees"] for nd in t["nodes"]])
    assert "trees" not in partner_doc["model"] and "leaf" not in json.dumps(partner_doc)
    loaded = {p: SecureBoostClassifier.load_model(path) for p, path in paths.items()}
    again = predict_local(loaded, {"bank": bank.iloc[te], "partner": partner.iloc[te]})
    np.testing.assert_allclose(again, margin)
    out = {p: o.result for p, o in run_local({
        "bank": lambda c: loaded["bank"].predict_proba(bank.iloc[te], channel=c),
        "partner": lambda c: loaded["partner"].predict_proba(partner.iloc[te], channel=c),
    }).items()}
    assert out["partner"] is None and out["bank"].shape == (400, 2)
    np.testing.assert_allclose(out["bank"][:, 1], 1 / (1 + np.exp(-margin)))
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(DataError):
        SecureBoostClassifier.load_model(tmp_path / "bad.json")
    old = json.loads(paths["partner"].read_text())
    old["model"]["version"] = 1  # a part saved before missing-value splits and leaf sets
    (tmp_path / "old.json").write_text(json.dumps(old))
    with pytest.raises(DataError, match="model part of version 1; this misuan reads version 2.*train the model again"):
        SecureBoostClassifier.load_model(tmp_path / "old.json")


def test_feature_party_must_not_pass_labels(data) -> None:
    bank, partner, y = data
    from misuan.net.memory import MemoryNetwork

    ch = MemoryNetwork(["bank", "partner"]).channels()
    with pytest.raises(DataError):
        SecureBoostClassifier().fit(partner, y, channel=ch["partner"], label_party="bank")


def test_three_parties_two_feature_parties() -> None:
    X, y = make_classification(n_samples=900, n_features=9, n_informative=6, random_state=4)
    parts = {"bank": X[:700, :3], "telco": X[:700, 3:6], "insurer": X[:700, 6:]}
    est = SecureBoostClassifier(n_estimators=3, max_depth=3, max_bin=16, n_jobs=1, base_score=0.5)
    models, outcomes = fit_local(est, parts, y[:700], label_party="bank")
    used = {nd["party"] for t in models["bank"].model_["trees"] for nd in t["nodes"] if "leaf" not in nd}
    assert used == {"bank", "telco", "insurer"}
    margin = predict_local(models, {"bank": X[700:, :3], "telco": X[700:, 3:6], "insurer": X[700:, 6:]})
    assert roc_auc_score(y[700:], margin) > 0.85
    # feature parties learn nothing from each other: no message ever flows between them
    assert outcomes["telco"].stats["per_peer"]["insurer"]["bytes_received"] == 0
    assert outcomes["insurer"].stats["per_peer"]["telco"]["bytes_received"] == 0
