"""Vertical logistic regression as a scikit-learn-style estimator, one copy per party.

Each party fits its own copy over its channel (``fit(bins, y, channel=..., label_party=...)``): the
bank with the labels, each feature party (one or more) without. After the fit each copy holds only its own part of the
model: the bank its intercept and its bins' coefficients, the partner its bins' coefficients
(``coef_``, one array per feature, per bin even with WOE encoding, whose bins' WOE are in
``woe_``; ``None`` with dummy encoding), and every copy the number of features of all parties
(``n_features_all_``). :meth:`scorecard` turns a part into its points table
(:func:`misuan.ml.scorecard.scorecard_from_bin_lr`); the parts' scores add up to the model's.
:func:`fit_local` runs both parties in threads over in-memory channels (notebooks, tests).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from misuan.errors import ConfigError, DataError
from misuan.ml.scorecard import Scorecard, scorecard_from_bin_lr
from misuan.net.channel import Channel
from misuan.net.local import LocalOutcome, run_local
from misuan.protocols.serving.scorecard import FORMAT
from misuan.protocols.vertical_lr import (
    STEP,
    JointScores,
    TrainingParams,
    score_feature_party,
    score_label_party,
    train_feature_party,
    train_label_party,
)
from misuan.protocols.vertical_lr.encoding import per_feature

__all__ = ["PART_VERSION", "VerticalLogisticRegression", "fit_local", "scorecard_part"]

PART_VERSION = 1  # of the model part document (scorecard.json)

_PARAMS = ("C", "tol", "max_iter", "memory", "encoding", "penalty")


class VerticalLogisticRegression:
    """L2 logistic regression on bin indicators (``encoding="dummy"``) or on the bins' WOE
    (``encoding="woe"``: a label leak to the partner, see ``TrainingParams``), trained jointly
    (``protocols/vertical_lr``); with WOE encoding also ``penalty="l1"`` (feature selection; each
    partner then sees its own coefficients and gradient during training)."""

    def __init__(self, C: float = 1.0, tol: float = 1e-4, max_iter: int = 50, memory: int = 3,  # noqa: N803
                 encoding: str = "dummy", penalty: str = "l2") -> None:
        self.C, self.tol, self.max_iter, self.memory, self.encoding = C, tol, max_iter, memory, encoding
        self.penalty = penalty

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {k: getattr(self, k) for k in _PARAMS}

    def set_params(self, **params: Any) -> VerticalLogisticRegression:
        for k, v in params.items():
            if k not in _PARAMS:
                raise ConfigError(f"unknown parameter {k!r}; the parameters are {list(_PARAMS)}")
            setattr(self, k, v)
        return self

    def training_params(self) -> TrainingParams:
        return TrainingParams(c=float(self.C), tol=float(self.tol), max_iter=int(self.max_iter), memory=int(self.memory),
                              encoding=self.encoding, penalty=self.penalty)  # type: ignore[arg-type]

    def fit(self, bins: Any, y: Any = None, *, channel: Channel, label_party: str, n_bins: Sequence[int],
            feature_parties: Sequence[str] | None = None, step: str = STEP) -> VerticalLogisticRegression:
        """Train as ``channel.party``: ``bins`` its (rows, features) bin indices of the aligned rows,
        ``n_bins`` the bins of each of its features; the label party passes the 0/1 labels ``y`` and,
        with more than one feature party, their names (the first leads; with one, its peer is the default)."""
        x = np.asarray(bins)
        if x.ndim != 2 or not np.issubdtype(x.dtype, np.integer):
            raise DataError("bins are a (rows, features) array of bin indices")
        params = self.training_params()
        nb = [int(b) for b in n_bins]
        if channel.party == label_party:
            if y is None:
                raise DataError("the label party must pass the labels y to fit")
            if feature_parties is None and len(channel.peers) > 1:
                raise ConfigError("the channel reaches several parties: name the feature parties (feature_parties=)")
            peers = list(feature_parties) if feature_parties is not None else list(channel.peers)
            bank = train_label_party(channel, peers, x, nb, np.asarray(y), params, step=step)
            self.role_, self.intercept_, flat = "label_party", float(bank.coef[0]), bank.coef[1:]
            self.n_iter_, self.losses_, self.woe_ = bank.iterations, bank.losses, bank.woe
            self.n_features_all_ = bank.n_features
        else:
            if y is not None:
                raise DataError(f"{channel.party} is a feature party: it must not hold labels (pass y=None)")
            partner = train_feature_party(channel, label_party, x, nb, params, step=step)
            self.role_, self.intercept_, flat = "feature_party", 0.0, partner.coef
            self.n_iter_, self.losses_, self.woe_ = partner.iterations, [], partner.woe
            self.n_features_all_ = partner.n_features  # from the bank's setup
        self.n_bins_ = nb
        self.coef_ = per_feature(flat, nb)
        return self

    def partial_decision_function(self, bins: Any) -> np.ndarray:
        """This party's part of the log-odds of default for its bins (the bank's includes the intercept)."""
        self._check_fitted()
        x = np.asarray(bins)
        out = np.full(x.shape[0], self.intercept_, dtype=np.float64)
        for j, c in enumerate(self.coef_):
            out += c[x[:, j]]
        return out

    def scorecard(self, features: list[str], labels: list[list[str]], n_features: int | None = None, *,
                  pdo: float = 20.0, base_score: float = 600.0, base_odds: float = 50.0) -> Scorecard:
        """This party's points table; ``n_features`` counts every party's features (the offset is
        spread over them all, the intercept over the bank's: the partner never needs it); by
        default the training's count (``n_features_all_``, which every party learns in the setup)."""
        self._check_fitted()
        n_all = self.n_features_all_ if n_features is None else n_features
        return scorecard_from_bin_lr(features, labels, list(self.coef_), self.intercept_, n_all,
                                     pdo=pdo, base_score=base_score, base_odds=base_odds)

    def score_points(self, bins: Any, card: Scorecard, *, channel: Channel, peer: str | Sequence[str], k: int = 4,
                     step: str = STEP) -> JointScores | None:
        """Joint scoring of aligned rows with the parties' scorecard parts: the bank (``peer``: the
        feature parties) gets each row's score, PD and up to ``k`` reasons (every party's features),
        a feature party (``peer``: the bank) ``None``."""
        self._check_fitted()
        x = np.asarray(bins)
        if self.role_ == "label_party":
            return score_label_party(channel, peer, card.features, card.points, x, card.pdo, card.base_score,
                                     card.base_odds, k, step=step)
        if not isinstance(peer, str):
            raise ConfigError("a feature party scores with the label party: pass its name as peer")
        score_feature_party(channel, peer, card.features, card.points, x, k, step=step)
        return None

    def decision_function(self, bins: Any, card: Scorecard, *, channel: Channel, peer: str | Sequence[str],
                          step: str = STEP) -> np.ndarray | None:
        """The joint log-odds of default of aligned rows: the bank gets them, the partner ``None``."""
        joint = self.score_points(bins, card, channel=channel, peer=peer, step=step)
        return None if joint is None else np.log(joint.pd) - np.log1p(-joint.pd)

    def predict_proba(self, bins: Any, card: Scorecard, *, channel: Channel, peer: str | Sequence[str],
                      step: str = STEP) -> np.ndarray | None:
        """``(rows, 2)``: P(no default), P(default) at the bank; ``None`` at the partner."""
        joint = self.score_points(bins, card, channel=channel, peer=peer, step=step)
        return None if joint is None else np.column_stack([1 - joint.pd, joint.pd])

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise ConfigError("fit the estimator first")


def fit_local(estimator: VerticalLogisticRegression, parts: Mapping[str, Any], n_bins: Mapping[str, Sequence[int]],
              y: Any, *, label_party: str, job_id: str = "vertical-lr-local",
              ) -> tuple[dict[str, VerticalLogisticRegression], dict[str, LocalOutcome]]:
    """Fit every party's copy in threads over in-memory channels; ``parts[party]`` its bins (the label
    party and one or more feature parties: the first after it in ``parts`` leads)."""
    if label_party not in parts or len(parts) < 2:
        raise ConfigError("vertical LR takes the label party and one or more feature parties")
    feature_parties = [p for p in parts if p != label_party]
    models = {p: VerticalLogisticRegression(**estimator.get_params()) for p in parts}

    def run(party: str) -> Any:
        return lambda ch: models[party].fit(parts[party], y if party == label_party else None, channel=ch,
                                            label_party=label_party, n_bins=n_bins[party], feature_parties=feature_parties)

    outcomes = run_local({p: run(p) for p in parts}, job_id=job_id)
    return models, outcomes


def scorecard_part(party: str, role: str, card: Scorecard, coef: Sequence[np.ndarray], intercept: float | None,
                   cuts: Sequence[np.ndarray], n_features: int, woe: Sequence[np.ndarray] | None = None) -> dict[str, Any]:
    """A party's model part as a JSON document (``scorecard.json``): its features' cut points, bin
    labels, coefficients and points (full precision: served points reproduce the batch scores), and
    the intercept at the label party only; with WOE encoding, its bins' WOE (``coef`` stays per bin:
    each bin's WOE times its feature's coefficient)."""
    return {
        "encoding": "dummy" if woe is None else "woe",
        "woe": None if woe is None else [np.asarray(v).tolist() for v in woe],
        "format": FORMAT, "version": PART_VERSION, "party": party, "role": role,
        "features": card.features, "labels": [lab[: len(c)] for lab, c in zip(card.labels, coef, strict=True)],
        "points": [row[: len(c)].tolist() for row, c in zip(card.points, coef, strict=True)],
        "coef": [np.asarray(c).tolist() for c in coef], "intercept": intercept, "cuts": [np.asarray(c).tolist() for c in cuts],
        "n_features_all_parties": n_features,
        "scaling": {"pdo": card.pdo, "base_score": card.base_score, "base_odds": card.base_odds},
    }
