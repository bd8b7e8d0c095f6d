"""SecureBoost estimators with a scikit-learn-style interface (protocol: :mod:`misuan.protocols.secureboost`).

Every party creates the same estimator and calls ``fit`` on its own end of the job's channel with
its own columns of the aligned rows; the label party also passes ``y``. Each party ends up with its
own *model part*: the label party keeps the tree structure, leaf values and its own thresholds; a
feature party keeps only the thresholds of the splits on its features (and the trees' shapes).
Prediction is joint (``predict_proba`` on every party with the same rows); only the label party gets
the scores. ``predict_contributions`` and ``reason_codes`` explain each row's score by feature,
the feature parties' features by name (exact TreeSHAP needs the feature parties' consent to the
per-node mode: ``prediction_mode="nodes"`` on their side; ``method="saabas"`` works with leaf sets).

``fit_local`` runs every party in one process (threads over in-memory channels) for notebooks
and tests; the same code runs in separate processes over gRPC.

Example (one process; over gRPC each party runs its own ``fit`` with its channel)::

    est = SecureBoostClassifier(n_estimators=10, max_depth=5, learning_rate=0.3, max_bin=32)
    models, outcomes = fit_local(est, {"bank": X_bank, "partner": X_partner}, y, label_party="bank")
    margin = predict_local(models, {"bank": X_bank_test, "partner": X_partner_test})
    models["bank"].save_model("bank_part.json"); models["partner"].save_model("partner_part.json")

Security model and leakage: see :mod:`misuan.protocols.secureboost` and ``docs/privacy.md``.

The hyperparameters are the fields of :class:`~misuan.protocols.secureboost.SecureBoostParams` but
``objective`` (the classifier and the regressor each fix it): same names, types and defaults, one
declaration. The constructor only stores them (as scikit-learn does); ``fit`` checks them.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from misuan.atomic_files import atomic_open
from misuan.errors import ConfigError, DataError
from misuan.net.channel import Channel
from misuan.net.local import LocalOutcome, run_local
from misuan.protocols.secureboost import (
    MODEL_VERSION,
    STEP,
    Objective,
    PredictionMode,
    SecureBoostParams,
    explain_label_party,
    predict_feature_party,
    predict_label_party,
    train_feature_party,
    train_label_party,
)
from misuan.protocols.secureboost.explain import ContributionMethod, contribution_names, reason_codes

__all__ = ["SecureBoostClassifier", "SecureBoostRegressor", "fit_local", "predict_local"]


def _hyperparameters() -> tuple[inspect.Parameter, ...]:
    """The estimators' keyword parameters: every field of :class:`SecureBoostParams` but ``objective``.

    The estimator class fixes the objective; names, types and defaults come from the one declaration.
    """
    hints = typing.get_type_hints(SecureBoostParams)
    return tuple(
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=_default(f), annotation=hints[f.name])
        for f in dataclasses.fields(SecureBoostParams)
        if f.name != "objective"
    )


def _default(f: dataclasses.Field[Any]) -> Any:
    """A field's default; a table's (``monotone_constraints``) is a fresh copy per estimator."""
    return f.default_factory() if f.default is dataclasses.MISSING and f.default_factory is not dataclasses.MISSING else f.default


_HYPERPARAMETERS = _hyperparameters()
_NAMES = tuple(hp.name for hp in _HYPERPARAMETERS)


class _SecureBoostBase:
    """Stores its hyperparameters as attributes (scikit-learn's way); :class:`SecureBoostParams` checks them at fit."""

    _objective: Objective = "binary:logistic"
    __signature__ = inspect.Signature(list(_HYPERPARAMETERS))

    def __init__(self, **params: Any) -> None:
        unknown = sorted(set(params) - set(_NAMES))
        if unknown:
            raise TypeError(f"{type(self).__name__} has no parameter(s) {unknown}; its parameters are {list(_NAMES)}")
        for hp in _HYPERPARAMETERS:
            default = dict(hp.default) if isinstance(hp.default, dict) else hp.default
            setattr(self, hp.name, params.get(hp.name, default))

    # --- sklearn plumbing --------------------------------------------------------------------
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {k: getattr(self, k) for k in _NAMES}

    def set_params(self, **params: Any) -> _SecureBoostBase:
        for k, v in params.items():
            if k not in _NAMES:
                raise ConfigError(f"unknown SecureBoost parameter {k!r}; the parameters are {list(_NAMES)}")
            setattr(self, k, v)
        return self

    def secureboost_params(self) -> SecureBoostParams:
        """The hyperparameters, checked (type and range), with this estimator's objective."""
        return SecureBoostParams(objective=self._objective, **self.get_params())

    # --- training ----------------------------------------------------------------------------
    def fit(
        self,
        X: Any,
        y: Any = None,
        *,
        channel: Channel,
        label_party: str,
        feature_parties: list[str] | None = None,
        eval_set: Any = None,
        step: str = STEP,
        on_tree: Callable[[dict[str, float]], None] | None = None,
    ) -> _SecureBoostBase:
        """Train jointly as ``channel.party``; ``step`` names the job step in messages and the ledger.

        The label party passes ``y`` and, for early stopping, ``eval_set=(X_eval, y_eval)``;
        a feature party passes ``y=None`` and ``eval_set=X_eval`` (the same rows, its columns).
        """
        params = self.secureboost_params()
        if channel.party == label_party:
            if y is None:
                raise DataError("the label party must pass the labels y to fit")
            peers = list(feature_parties) if feature_parties is not None else [p for p in channel.peers]
            res = train_label_party(
                channel, X, np.asarray(y), peers, params, eval_set=eval_set, step=step, on_tree=on_tree
            )
            self.role_ = "label_party"
            self.best_iteration_ = res.best_iteration
        else:
            if y is not None:
                raise DataError(f"{channel.party} is a feature party: it must not hold labels (pass y=None)")
            res = train_feature_party(channel, X, label_party, params, X_eval=eval_set, step=step)
            self.role_ = "feature_party"
        self._set_model(res.model)
        self.history_ = res.history
        return self

    def _set_model(self, model: dict[str, Any]) -> None:
        self.model_ = model
        self.role_ = model["role"]
        self.party_ = model["party"]
        self.feature_names_in_ = np.array(model["feature_names"], dtype=object)
        self.n_features_in_ = len(model["feature_names"])
        if self.role_ == "label_party":
            self.n_trees_ = len(model["trees"])
            self.contribution_names_ = contribution_names(model)
            imp = model["importance"]
            keys = [f"{self.party_}:{nm}" for nm in model["feature_names"]]
            for party, names in model["feature_parties"].items():
                keys += [f"{party}:{nm}" for nm in names]
            self.feature_keys_ = keys
            gains = np.array([imp.get(k, {}).get("total_gain", 0.0) for k in keys])
            self.feature_importances_ = gains / gains.sum() if gains.sum() > 0 else gains
        else:
            self.split_count_ = dict(model["split_count"])

    def get_importance(self, importance_type: str = "total_gain") -> dict[str, float]:
        """``total_gain`` or ``weight`` (split count) per ``party:feature`` (label party only)."""
        self._check_fitted()
        if self.role_ != "label_party":
            if importance_type == "weight":
                return {f"{self.party_}:{k}": float(v) for k, v in self.split_count_.items() if v}
            raise ConfigError("gains are known to the label party only; a feature party has importance_type='weight'")
        if importance_type not in ("total_gain", "weight"):
            raise ConfigError("importance_type must be 'total_gain' or 'weight'")
        return {k: v[importance_type] for k, v in self.model_["importance"].items()}

    # --- prediction --------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise ConfigError("this SecureBoost model is not fitted: call fit or load_model first")

    def decision_function(self, X: Any, *, channel: Channel, step: str = STEP) -> np.ndarray | None:
        """Joint prediction; the label party gets the margins, a feature party ``None``.

        The label party asks in its ``prediction_mode``; a feature party answers in the per-node
        mode only if its own ``prediction_mode`` is ``"nodes"``.
        """
        self._check_fitted()
        mode = self._prediction_mode()
        if self.role_ == "label_party":
            return predict_label_party(channel, self.model_, X, step, mode)
        predict_feature_party(channel, self.model_, X, step, mode)
        return None

    def _prediction_mode(self) -> PredictionMode:
        mode = getattr(self, "prediction_mode", "leaves")
        if mode not in ("leaves", "nodes"):
            raise ConfigError(f"prediction_mode must be 'leaves' or 'nodes', not {mode!r}")
        return typing.cast(PredictionMode, mode)

    def predict_contributions(
        self, X: Any, *, channel: Channel, method: ContributionMethod = "treeshap", step: str = STEP
    ) -> np.ndarray | None:
        """Joint prediction with each feature's contribution to each row's margin (label party; others ``None``).

        Columns: :attr:`contribution_names_` (``party:feature``, then ``bias``); each row sums to
        its margin. ``"treeshap"`` is XGBoost's ``pred_contribs=True`` (exact; asks the feature
        parties for every split decision), ``"saabas"`` its ``approx_contribs=True`` (leaf sets do).
        """
        self._check_fitted()
        mode = self._prediction_mode()
        if self.role_ == "label_party":
            return explain_label_party(channel, self.model_, X, step, method, mode)
        predict_feature_party(channel, self.model_, X, step, mode)
        return None

    def reason_codes(
        self, X: Any, *, channel: Channel, k: int = 4, method: ContributionMethod = "treeshap",
        adverse: typing.Literal["positive", "negative"] = "positive", step: str = STEP,
    ) -> list[list[str]] | None:
        """Per row, the ``k`` features that pushed its score most the adverse way (label party; others ``None``).

        ``adverse="positive"``: raising the margin is adverse (the model scores the bad outcome,
        label 1 = default, as misuan's credit steps train it).
        """
        contribs = self.predict_contributions(X, channel=channel, method=method, step=step)
        if contribs is None:
            return None
        return reason_codes(contribs, self.contribution_names_, k, adverse)

    # --- persistence -------------------------------------------------------------------------
    def save_model(self, path: str | os.PathLike[str]) -> Path:
        """Write this party's model part as JSON, atomically (temp file + ``os.replace``)."""
        self._check_fitted()
        with atomic_open(path) as fh:
            json.dump({"estimator": type(self).__name__, "params": self.get_params(), "model": self.model_}, fh)
        return Path(path)

    @classmethod
    def load_model(cls, path: str | os.PathLike[str]) -> Any:
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"cannot read SecureBoost model {path}: {exc}") from exc
        model = doc.get("model") if isinstance(doc, dict) else None
        if not isinstance(model, dict) or model.get("role") not in ("label_party", "feature_party"):
            raise DataError(f"{path} is not a SecureBoost model part")
        if model.get("version") != MODEL_VERSION:
            raise DataError(
                f"{path} is a SecureBoost model part of version {model.get('version')}; this misuan reads version "
                f"{MODEL_VERSION} (missing-value splits and leaf-set prediction changed the format): train the model again"
            )
        est = cls(**{k: v for k, v in doc.get("params", {}).items() if k in _NAMES})
        est._set_model(model)
        return est


class SecureBoostClassifier(_SecureBoostBase):
    """Binary classifier (logistic loss); ``predict_proba`` gives ``[P(y=0), P(y=1)]`` per row."""

    _objective = "binary:logistic"
    classes_ = np.array([0, 1])

    def predict_proba(self, X: Any, *, channel: Channel, step: str = STEP) -> np.ndarray | None:
        margin = self.decision_function(X, channel=channel, step=step)
        if margin is None:
            return None
        p1 = 1.0 / (1.0 + np.exp(-margin))
        return np.column_stack([1.0 - p1, p1])

    def predict(self, X: Any, *, channel: Channel, step: str = STEP) -> np.ndarray | None:
        proba = self.predict_proba(X, channel=channel, step=step)
        return None if proba is None else (proba[:, 1] >= 0.5).astype(np.int64)


class SecureBoostRegressor(_SecureBoostBase):
    """Regressor (squared loss)."""

    _objective = "reg:squarederror"

    def predict(self, X: Any, *, channel: Channel, step: str = STEP) -> np.ndarray | None:
        return self.decision_function(X, channel=channel, step=step)


# ================================================================================================
# one-process convenience
# ================================================================================================
def fit_local(
    estimator: _SecureBoostBase,
    parts: Mapping[str, Any],
    y: Any,
    *,
    label_party: str,
    eval_parts: Mapping[str, Any] | None = None,
    y_eval: Any = None,
    job_id: str = "secureboost-local",
) -> tuple[dict[str, _SecureBoostBase], dict[str, LocalOutcome]]:
    """Fit every party's copy of ``estimator`` in threads over in-memory channels (:func:`run_local`).

    ``parts[party]`` is that party's columns of the aligned rows. Returns the fitted estimators and
    each party's outcome (its ``disclosures`` are the party's ledger entries, ``stats`` its traffic).
    """
    if label_party not in parts:
        raise ConfigError(f"label party {label_party!r} has no data in parts")
    models = {p: type(estimator)(**estimator.get_params()) for p in parts}

    def run(party: str) -> Any:
        def fn(ch: Channel) -> Any:
            if party == label_party:
                ev = None if eval_parts is None else (eval_parts[party], y_eval)
                return models[party].fit(parts[party], y, channel=ch, label_party=label_party, eval_set=ev)
            ev_x = None if eval_parts is None else eval_parts[party]
            return models[party].fit(parts[party], None, channel=ch, label_party=label_party, eval_set=ev_x)

        return fn

    outcomes = run_local({p: run(p) for p in parts}, job_id=job_id)
    return models, outcomes


def predict_local(models: Mapping[str, _SecureBoostBase], parts: Mapping[str, Any], *, job_id: str = "secureboost-predict") -> np.ndarray:
    """Joint prediction in one process; returns the label party's margins (or values)."""
    def party_fn(p: str) -> Any:
        return lambda ch: models[p].decision_function(parts[p], channel=ch)

    out = run_local({p: party_fn(p) for p in parts}, job_id=job_id)
    label = next(p for p, m in models.items() if m.role_ == "label_party")
    return np.asarray(out[label].result)
