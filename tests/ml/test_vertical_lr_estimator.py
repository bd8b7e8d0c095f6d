"""The vertical LR estimator: each party's copy holds its own part; the parts' scorecards add up to the model."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.metrics import roc_auc_score

from misuan.errors import ConfigError, DataError
from misuan.ml.scorecard import Scorecard, scaling
from misuan.ml.vertical_lr import VerticalLogisticRegression, fit_local
from misuan.net.local import run_local


@pytest.mark.parametrize("encoding", ["dummy", "woe"])
def test_parts_score_the_pooled_model_and_their_scorecards_add_up(encoding: str) -> None:
    x, y = make_classification(1500, 5, n_informative=3, n_redundant=0, weights=[0.8], random_state=1)
    bins = np.stack([np.searchsorted(np.quantile(x[:, j], [0.25, 0.5, 0.75]), x[:, j]) for j in range(5)], axis=1)
    parts = {"bank": bins[:, :2], "partner": bins[:, 2:]}
    models, outcomes = fit_local(VerticalLogisticRegression(tol=1e-5, encoding=encoding), parts,
                                 {"bank": [4, 4], "partner": [4, 4, 4]}, y, label_party="bank")
    bank, partner = models["bank"], models["partner"]
    assert (bank.woe_ is None and partner.woe_ is None) if encoding == "dummy" else \
        (len(bank.woe_) == 2 and len(partner.woe_) == 3 and bank.get_params()["encoding"] == "woe")
    assert bank.role_ == "label_party" and partner.role_ == "feature_party" and bank.n_iter_ == partner.n_iter_
    logit = bank.partial_decision_function(parts["bank"]) + partner.partial_decision_function(parts["partner"])
    assert roc_auc_score(y, logit) > 0.8
    labels = [[f"q{i}" for i in range(4)]] * 5
    card_b = bank.scorecard(["a", "b"], labels[:2], 5)
    card_p = partner.scorecard(["c", "d", "e"], labels[2:], 5)  # the intercept stays with the bank
    factor, offset = scaling(20.0, 600.0, 50.0)
    assert np.allclose(card_b.score(parts["bank"]) + card_p.score(parts["partner"]), offset - factor * logit, atol=1e-9)
    # joint scoring: the bank gets the score, the PD and reasons over both parties' features
    out = run_local({
        "bank": lambda ch: bank.score_points(parts["bank"], card_b, channel=ch, peer="partner", k=3),
        "partner": lambda ch: partner.score_points(parts["partner"], card_p, channel=ch, peer="bank", k=3),
    }, job_id="score")
    joint = out["bank"].result
    assert out["partner"].result is None
    assert np.allclose(joint.score, offset - factor * logit, atol=1e-9)
    assert np.allclose(joint.pd, 1 / (1 + np.exp(-logit)), atol=1e-9)
    pooled = Scorecard(["bank:a", "bank:b", "partner:c", "partner:d", "partner:e"], labels,
                       np.vstack([card_b.points, card_p.points]), 20.0, 600.0, 50.0)
    assert joint.reasons == pooled.reasons(bins, k=3)
    proba = run_local({
        "bank": lambda ch: bank.predict_proba(parts["bank"], card_b, channel=ch, peer="partner"),
        "partner": lambda ch: partner.predict_proba(parts["partner"], card_p, channel=ch, peer="bank"),
    }, job_id="proba")
    assert np.allclose(proba["bank"].result[:, 1], 1 / (1 + np.exp(-logit)), atol=1e-9)
    assert outcomes["partner"].disclosures  # what the partner learnt is in its ledger


def test_misuse_is_refused() -> None:
    with pytest.raises(ConfigError):
        VerticalLogisticRegression().set_params(solver="saga")
    with pytest.raises(ConfigError, match="woe"):  # L1 fits one coefficient per feature
        VerticalLogisticRegression(penalty="l1").training_params()
    assert VerticalLogisticRegression(penalty="l1", encoding="woe").training_params().l1 == 1.0
    with pytest.raises(ConfigError):
        VerticalLogisticRegression().partial_decision_function(np.zeros((1, 1), int))
    with pytest.raises(DataError):
        VerticalLogisticRegression().fit(np.zeros((3, 1)), None, channel=None, label_party="bank", n_bins=[2])  # type: ignore[arg-type]


def test_three_parties_fit_and_score_jointly_with_reasons_from_every_part() -> None:
    x, y = make_classification(1500, 6, n_informative=4, n_redundant=0, weights=[0.8], random_state=2)
    bins = np.stack([np.searchsorted(np.quantile(x[:, j], [0.25, 0.5, 0.75]), x[:, j]) for j in range(6)], axis=1)
    cols = {"bank": (0, 2), "partner": (2, 4), "insurer": (4, 6)}
    parts = {p: bins[:, a:b] for p, (a, b) in cols.items()}
    models, _ = fit_local(VerticalLogisticRegression(tol=1e-5), parts, {p: [4, 4] for p in cols}, y, label_party="bank")
    assert len({m.n_iter_ for m in models.values()}) == 1
    logit = sum(models[p].partial_decision_function(parts[p]) for p in cols)
    assert roc_auc_score(y, logit) > 0.8
    labels = [[f"q{i}" for i in range(4)]] * 2
    assert {m.n_features_all_ for m in models.values()} == {6}  # each partner learns the count in the setup
    cards = {p: models[p].scorecard([f"{p[0]}{j}" for j in range(2)], labels) for p in cols}
    out = run_local({p: (lambda ch, p=p: models[p].score_points(parts[p], cards[p], channel=ch, k=4,
                                                              peer=["partner", "insurer"] if p == "bank" else "bank"))
                     for p in cols}, job_id="score-three")
    joint = out["bank"].result
    factor, offset = scaling(20.0, 600.0, 50.0)
    assert np.allclose(joint.score, offset - factor * logit, atol=1e-9)
    pooled = Scorecard([f"{p}:{f}" for p in cols for f in cards[p].features], labels * 3,
                       np.vstack([cards[p].points for p in cols]), 20.0, 600.0, 50.0)
    assert joint.reasons == pooled.reasons(bins, k=4)
    assert {r.split(":")[0] for row in joint.reasons for r in row} == set(cols)
