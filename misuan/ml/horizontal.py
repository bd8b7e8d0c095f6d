"""Horizontal learning as scikit-learn-style estimators: one object per party, the same at every data
party and at the aggregator, each fit a series of secure aggregations (:mod:`misuan.protocols.secagg`).

    binning = HorizontalWoeBinning(max_bin=10).fit(X, y, channel=chan, aggregator="hub", data_parties=lenders)
    scorecard_lr = HorizontalLogisticRegression(C=1.0).fit(binning.transform(X), y, channel=chan, ...)
    boosting = HorizontalGBDTClassifier(n_estimators=10, max_depth=4).fit(X, y, channel=chan, ...)

A data party passes its own rows ``X`` (NaN: missing, except for the logistic regression) and 0/1
labels ``y``; the aggregator, which holds no rows, passes the number of features as ``X`` and no
``y``. Every party ends with the same fitted model, so ``transform`` and ``predict_proba`` run
locally with nothing sent; ``to_dict``/``from_dict`` write and read it as JSON.

What each fit reveals is in its module's docstring (:mod:`.horizontal_binning`,
:mod:`.horizontal_lr`, :mod:`.horizontal_gbdt`) and in ``docs/privacy.md``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from misuan.errors import ConfigError, DataError
from misuan.ml import horizontal_binning, horizontal_gbdt, horizontal_lr
from misuan.ml.horizontal_binning import HorizontalWoe
from misuan.ml.horizontal_gbdt import HorizontalGBDT, HorizontalGBDTParams
from misuan.ml.horizontal_lr import HorizontalLRResult
from misuan.net.channel import Channel
from misuan.params import check_params, param

__all__ = [
    "HorizontalGBDTClassifier", "HorizontalLRParams", "HorizontalLogisticRegression", "HorizontalWoeBinning",
    "HorizontalWoeParams", "RoundParams",
]


@dataclasses.dataclass(frozen=True)
class HorizontalWoeParams:
    """Pooled binning: every party of a fit must use the same."""

    max_bin: int = param(10, "bins per feature (missing values get one more)", ge=2, le=100)
    fine_bins: int = param(1024, "cells of the fine histogram the bins are cut from", ge=16, le=65536)

    def __post_init__(self) -> None:
        check_params(self, "horizontal_woe")


@dataclasses.dataclass(frozen=True)
class HorizontalLRParams:
    """Logistic regression as scikit-learn's ``LogisticRegression(C=...)`` defines it (L2, intercept unpenalised)."""

    C: float = param(1.0, "inverse of the L2 penalty's strength", gt=0.0, le=1e12)
    max_iter: int = param(30, "most Newton steps (one aggregation round each)", ge=1, le=1000)
    tol: float = param(1e-6, "stop when no weight moves more than this in a step", gt=0.0, le=1.0)

    def __post_init__(self) -> None:
        check_params(self, "horizontal_lr")


@dataclasses.dataclass(frozen=True)
class RoundParams:
    """How the aggregation rounds of a fit wait for the data parties."""

    round_timeout_s: float = param(
        60.0, "how long the aggregator waits for each round before counting a data party as dropped", gt=0.0, le=86400.0,
    )

    def __post_init__(self) -> None:
        check_params(self, "horizontal rounds")


class _HorizontalEstimator:
    """Hyperparameters as attributes (scikit-learn's way), checked by ``_params`` at fit."""

    _params: ClassVar[type]  # the dataclass of this estimator's hyperparameters
    _step: ClassVar[str]  # the default step name of its rounds

    def __init__(self, *, round_timeout_s: float = 60.0, **params: Any) -> None:
        names = [f.name for f in dataclasses.fields(self._params)]
        unknown = sorted(set(params) - set(names))
        if unknown:
            raise TypeError(f"{type(self).__name__} has no parameter(s) {unknown}; its parameters are {names}")
        defaults = self._params()
        for name in names:
            setattr(self, name, params.get(name, getattr(defaults, name)))
        self.round_timeout_s = round_timeout_s

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        names = [f.name for f in dataclasses.fields(self._params)]
        return {**{n: getattr(self, n) for n in names}, "round_timeout_s": self.round_timeout_s}

    def set_params(self, **params: Any) -> _HorizontalEstimator:
        allowed = self.get_params()
        for k, v in params.items():
            if k not in allowed:
                raise ConfigError(f"{type(self).__name__} has no parameter {k!r}; its parameters are {list(allowed)}")
            setattr(self, k, v)
        return self

    def checked_params(self) -> Any:
        params = self.get_params()
        RoundParams(round_timeout_s=params.pop("round_timeout_s"))
        return self._params(**params)

    def _fit_args(self, X: Any, y: Any, channel: Channel, aggregator: str, step: str | None) -> tuple[Any, Any, dict[str, Any]]:
        """(X, y) for the data party's fit, or (n_features, None) at the aggregator; and the common keywords."""
        kw = {"round_timeout_s": float(self.round_timeout_s), "step": step or self._step}  # checked_params checked it
        if channel.party == aggregator:
            if isinstance(X, bool) or not isinstance(X, (int, np.integer)) or X < 1 or y is not None:
                raise DataError("the aggregator holds no rows: pass the number of features as X and no y")
            return int(X), None, kw
        if y is None:
            raise DataError(f"data party {channel.party} must pass its 0/1 labels y to fit")
        return X, y, kw


class HorizontalWoeBinning(_HorizontalEstimator):
    """Pooled quantile bins with each bin's WOE and each feature's IV (:mod:`.horizontal_binning`)."""

    _params = HorizontalWoeParams
    _step = "hwoe"

    def fit(self, X: Any, y: Any = None, *, channel: Channel, aggregator: str, data_parties: list[str],
            step: str | None = None) -> HorizontalWoeBinning:
        p: HorizontalWoeParams = self.checked_params()
        x, labels, kw = self._fit_args(X, y, channel, aggregator, step)
        if labels is None:
            self.table_ = horizontal_binning.woe_as_aggregator(
                channel, x, data_parties=data_parties, max_bin=p.max_bin, fine_bins=p.fine_bins, **kw)
        else:
            self.table_ = horizontal_binning.woe_as_data_party(
                channel, x, labels, aggregator=aggregator, data_parties=data_parties, max_bin=p.max_bin,
                fine_bins=p.fine_bins, **kw)
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Each value replaced by its bin's pooled WOE."""
        return self.table_.transform(np.asarray(X, dtype=np.float64))

    def to_dict(self) -> dict[str, Any]:
        return {"params": self.get_params(), "table": self.table_.to_dict()}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], where: str = "the binning") -> HorizontalWoeBinning:
        est = cls(**_params_of(doc, cls, where))
        est.table_ = HorizontalWoe.from_dict(_table_of(doc, "table", where), where)
        return est


class HorizontalLogisticRegression(_HorizontalEstimator):
    """L2-penalised logistic regression by Newton's method on pooled sums (:mod:`.horizontal_lr`)."""

    _params = HorizontalLRParams
    _step = "hlr"

    def fit(self, X: Any, y: Any = None, *, channel: Channel, aggregator: str, data_parties: list[str],
            step: str | None = None) -> HorizontalLogisticRegression:
        p: HorizontalLRParams = self.checked_params()
        x, labels, kw = self._fit_args(X, y, channel, aggregator, step)
        if labels is None:
            res = horizontal_lr.fit_as_aggregator(channel, x, data_parties=data_parties, c=p.C, max_iter=p.max_iter,
                                                  tol=p.tol, **kw)
        else:
            res = horizontal_lr.fit_as_data_party(channel, x, labels, aggregator=aggregator, data_parties=data_parties,
                                                  c=p.C, max_iter=p.max_iter, tol=p.tol, **kw)
        self._set(res)
        return self

    def _set(self, res: HorizontalLRResult) -> None:
        self.result_ = res
        self.coef_, self.intercept_ = res.coef, res.intercept

    def predict_proba(self, X: Any) -> np.ndarray:
        """``[P(y=0), P(y=1)]`` per row, as scikit-learn gives it."""
        p1 = self.result_.predict_proba(np.asarray(X, dtype=np.float64))
        return np.column_stack([1.0 - p1, p1])

    def to_dict(self) -> dict[str, Any]:
        r = self.result_
        return {"params": self.get_params(), "coef": r.coef.tolist(), "intercept": r.intercept, "n_rows": r.n_rows,
                "iterations": r.iterations, "loss": r.loss, "contributors": r.contributors}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], where: str = "the logistic regression") -> HorizontalLogisticRegression:
        est = cls(**_params_of(doc, cls, where))
        try:
            coef = np.asarray(doc["coef"], dtype=np.float64)
            res = HorizontalLRResult(coef, float(doc["intercept"]), int(doc["n_rows"]), int(doc["iterations"]),
                                     [float(v) for v in doc["loss"]], [str(c) for c in doc["contributors"]])
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{where}: coef, intercept, n_rows, iterations, loss and contributors are needed") from None
        if coef.ndim != 1 or not np.all(np.isfinite(coef)):
            raise DataError(f"{where}: coef must be a list of finite numbers")
        est._set(res)
        return est


class HorizontalGBDTClassifier(_HorizontalEstimator):
    """XGBoost-style boosted trees on pooled histograms (:mod:`.horizontal_gbdt`); XGBoost's parameter names."""

    _params = HorizontalGBDTParams
    _step = "hgb"
    classes_ = np.array([0, 1])

    def fit(self, X: Any, y: Any = None, *, channel: Channel, aggregator: str, data_parties: list[str],
            step: str | None = None) -> HorizontalGBDTClassifier:
        p: HorizontalGBDTParams = self.checked_params()
        x, labels, kw = self._fit_args(X, y, channel, aggregator, step)
        if labels is None:
            self.model_ = horizontal_gbdt.fit_as_aggregator(channel, x, data_parties=data_parties, params=p, **kw)
        else:
            self.model_ = horizontal_gbdt.fit_as_data_party(channel, x, labels, aggregator=aggregator,
                                                            data_parties=data_parties, params=p, **kw)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        p1 = self.model_.predict_proba(np.asarray(X, dtype=np.float64))
        return np.column_stack([1.0 - p1, p1])

    def to_dict(self) -> dict[str, Any]:
        return {"params": self.get_params(), "model": self.model_.to_dict()}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], where: str = "the boosting model") -> HorizontalGBDTClassifier:
        est = cls(**_params_of(doc, cls, where))
        est.model_ = HorizontalGBDT.from_dict(_table_of(doc, "model", where), where)
        return est


def _params_of(doc: Mapping[str, Any], cls: type[_HorizontalEstimator], where: str) -> dict[str, Any]:
    params = _table_of(doc, "params", where)
    try:
        cls(**params).checked_params()
    except (TypeError, ConfigError) as exc:
        raise DataError(f"{where}: its parameters are not {cls.__name__}'s: {exc}") from None
    return dict(params)


def _table_of(doc: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = doc.get(key) if isinstance(doc, Mapping) else None
    if not isinstance(value, Mapping):
        raise DataError(f"{where}: {key} must be a table")
    return value
