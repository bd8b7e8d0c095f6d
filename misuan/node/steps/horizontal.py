"""Job steps of horizontal learning: data parties (lenders with the same columns on different
customers, each with its own labels) and one aggregator, over secure aggregation
(:mod:`misuan.protocols.secagg`); the estimators are :mod:`misuan.ml.horizontal`'s.

Spec (the parties: three or more of role ``data_party`` and one ``aggregator``, see :mod:`misuan.node.spec`)::

    [[step]]
    kind = "horizontal_woe"                # pooled bins, WOE and IV
    params = { features = ["LIMIT_BAL", "PAY_0"], max_bin = 10 }

    [[step]]
    kind = "horizontal_scorecard"          # logistic regression on the WOE of that step, scaled to points
    params = { woe_step = "horizontal_woe", min_iv = 0.1, C = 1.0, pdo = 20, base_score = 600, base_odds = 50 }

    [[step]]
    kind = "horizontal_boosting"           # XGBoost-style trees on pooled histograms
    params = { features = ["LIMIT_BAL", "PAY_0"], n_estimators = 10, max_depth = 4 }

``features`` names columns every data party holds (numeric; empty cells are missing values; the
scorecard's logistic regression takes the WOE of the bins, which has a bin for missing values).
Every party, the aggregator included, ends with the same model and writes it as an artefact
(``binning.json`` and ``woe_table.csv``; ``scorecard.json`` and ``scorecard.csv``; ``model.json``),
readable with the estimators' ``from_dict``. A data party's outputs add the AUC of the model on its
own rows, computed locally: nothing more is sent for it.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from misuan.audit.ledger import write_json_atomic
from misuan.errors import ConfigError, DataError, JobSpecError, MissingColumnError
from misuan.ml.horizontal import (
    HorizontalGBDTClassifier,
    HorizontalLogisticRegression,
    HorizontalLRParams,
    HorizontalWoeBinning,
    HorizontalWoeParams,
    RoundParams,
)
from misuan.ml.horizontal_binning import bin_values
from misuan.ml.horizontal_gbdt import HorizontalGBDTParams
from misuan.ml.metrics import roc_auc
from misuan.ml.scorecard import Scorecard, bin_labels, scorecard_from_woe_lr
from misuan.net.protocol import AGGREGATOR, DATA_PARTY, HORIZONTAL_ROLES
from misuan.node.data import CheckedDataset, check_numeric_features, file_lines
from misuan.node.spec import JobSpec, StepSpec
from misuan.node.steps.context import ParsedParams, StepContext, StepKind, StepResult, param_error, where
from misuan.node.steps.preview import PlannedDisclosure, plan
from misuan.params import check_params, param
from misuan.protocols.secagg import PROTOCOL
from misuan.protocols.secagg.disclosures import DISCLOSURES
from misuan.protocols.secagg.params import MIN_PARTIES

__all__ = [
    "BOOSTING", "SCORECARD", "WOE", "FeatureParams", "FederatedScorecard", "ScorecardStepParams", "read_boosting",
    "read_scorecard",
]

BINNING_FILE, WOE_TABLE_FILE = "binning.json", "woe_table.csv"
SCORECARD_FILE, SCORECARD_TABLE_FILE = "scorecard.json", "scorecard.csv"
MODEL_FILE = "model.json"


@dataclasses.dataclass(frozen=True)
class FeatureParams:
    features: tuple[str, ...] = param((), "the columns the model uses, which every data party holds (numeric)")

    def __post_init__(self) -> None:
        check_params(self, "horizontal features")


@dataclasses.dataclass(frozen=True)
class ScorecardStepParams:
    woe_step: str = param("horizontal_woe", "the horizontal_woe step whose bins and WOE the scorecard uses")
    min_iv: float = param(0.1, "the scorecard keeps the features of at least this pooled IV (0.1: medium power)",
                          ge=0.0, le=10.0)
    pdo: float = param(20.0, "points that double the good:bad odds", gt=0.0, le=1000.0)
    base_score: float = param(600.0, "the score that stands for base_odds", ge=0.0, le=10000.0)
    base_odds: float = param(50.0, "the good:bad odds at base_score", gt=0.0, le=1e6)

    def __post_init__(self) -> None:
        check_params(self, "horizontal_scorecard")


@dataclasses.dataclass
class FederatedScorecard:
    """What a ``horizontal_scorecard`` step writes (``scorecard.json``): the pooled bins, the features
    kept, the logistic regression on their WOE and the points scaling; every party holds the same."""

    features: list[str]  # the binning's features
    binning: HorizontalWoeBinning
    keep: list[int]  # the features the scorecard uses (indices into ``features``)
    lr: HorizontalLogisticRegression
    scaling: dict[str, float]  # pdo, base_score, base_odds

    def __post_init__(self) -> None:
        t = self.binning.table_
        self.kept = [self.features[k] for k in self.keep]
        self.card: Scorecard = scorecard_from_woe_lr(
            self.kept, [t.edges[k] for k in self.keep], t.woe[self.keep], self.lr.coef_, self.lr.intercept_,
            **self.scaling,
        )

    def woe(self, x: np.ndarray) -> np.ndarray:
        """The logistic regression's input: each kept feature's value replaced by its bin's WOE."""
        return self.binning.transform(x)[:, self.keep]

    def bins(self, x: np.ndarray) -> np.ndarray:
        """The scorecard's input: each kept feature's bin (the last one: missing)."""
        return bin_values(np.asarray(x, dtype=np.float64), self.binning.table_.edges)[:, self.keep]

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """P(bad) per row of ``x`` (the binning's features)."""
        return self.lr.predict_proba(self.woe(x))[:, 1]

    def to_dict(self) -> dict[str, Any]:
        return {"features": self.features, "binning": self.binning.to_dict(), "kept": self.keep,
                "scaling": self.scaling, "logistic_regression": self.lr.to_dict()}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], where: str = "the scorecard") -> FederatedScorecard:
        try:
            features = [str(f) for f in doc["features"]]
            keep = [int(k) for k in doc["kept"]]
            scaling = {k: float(doc["scaling"][k]) for k in ("pdo", "base_score", "base_odds")}
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{where}: features, kept and scaling (pdo, base_score, base_odds) are needed") from None
        binning = HorizontalWoeBinning.from_dict(doc.get("binning", {}), where)
        lr = HorizontalLogisticRegression.from_dict(doc.get("logistic_regression", {}), where)
        if len(features) != len(binning.table_.edges) or not all(0 <= k < len(features) for k in keep) \
                or len(keep) != lr.coef_.size:
            raise DataError(f"{where}: the features, the kept ones and the weights do not match")
        try:
            return cls(features, binning, keep, lr, scaling)
        except ConfigError as exc:
            raise DataError(f"{where}: {exc}") from None


def read_scorecard(path: Path) -> FederatedScorecard:
    """A ``horizontal_scorecard`` step's ``scorecard.json`` (any party's: they are the same)."""
    return FederatedScorecard.from_dict(json.loads(path.read_text(encoding="utf-8")), str(path))


def read_boosting(path: Path) -> tuple[list[str], HorizontalGBDTClassifier]:
    """A ``horizontal_boosting`` step's ``model.json``: its features and the model."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    return [str(f) for f in doc.get("features", [])], HorizontalGBDTClassifier.from_dict(doc, str(path))


# --- checks before anything connects ------------------------------------------------------------
def _check_parties(step: StepSpec, spec: JobSpec) -> None:
    """An aggregator and at least MIN_PARTIES data parties take part (the roles are checked by the runner)."""
    data = [p for p in step.parties if spec.party(p).role == DATA_PARTY]
    if AGGREGATOR not in {spec.party(p).role for p in step.parties} or len(data) < MIN_PARTIES:
        raise JobSpecError(f"{where(step, spec)}.parties: a {step.kind} step runs between the aggregator and at "
                           f"least {MIN_PARTIES} data parties; it has {list(step.parties)}")


def _check_features(step: StepSpec, spec: JobSpec, parsed: ParsedParams) -> None:
    _check_parties(step, spec)
    features = parsed[FeatureParams].features
    if not features or not all(features):
        raise param_error(step, spec, "features", 'list the columns the model uses, e.g. features = ["LIMIT_BAL", "PAY_0"]')
    twice = sorted({c for c in features if features.count(c) > 1})
    if twice:
        raise param_error(step, spec, "features", f"columns {twice} are listed twice")


def _check_feature_data(step: StepSpec, spec: JobSpec, parsed: ParsedParams, data: CheckedDataset) -> None:
    """The step's columns are in this data party's file, numeric and never infinite."""
    features = parsed[FeatureParams].features
    missing = [c for c in features if c not in data.frame.columns]
    if missing:
        raise MissingColumnError(f"{data.name} has no column(s) {missing}, which {where(step, spec)} uses")
    check_numeric_features(dataclasses.replace(data, features=tuple(features)))
    values = data.frame[list(features)].to_numpy(dtype=np.float64)
    bad = np.flatnonzero(np.isinf(values).any(axis=1))
    if bad.size:
        raise DataError(f"{data.name}: infinite values on file line(s) {file_lines(list(bad))}; leave a cell empty for a missing value")


def _check_scorecard(step: StepSpec, spec: JobSpec, parsed: ParsedParams) -> None:
    _check_parties(step, spec)
    name = parsed[ScorecardStepParams].woe_step
    earlier = spec.steps[: spec.steps.index(step)]
    woe = next((s for s in earlier if s.name == name), None)
    if woe is None or woe.kind != WOE.kind:
        raise param_error(step, spec, "woe_step", f"name a horizontal_woe step before this one, not {name!r}")
    if woe.parties != step.parties:
        raise param_error(step, spec, "woe_step", f"step {name!r} runs between other parties than this one")


# --- the runs -----------------------------------------------------------------------------------
def _data_parties(ctx: StepContext) -> list[str]:
    return [p for p in ctx.step.parties if ctx.spec.party(p).role == DATA_PARTY]


def _fit_args(ctx: StepContext) -> dict[str, Any]:
    return {"channel": ctx.channel, "aggregator": ctx.spec.aggregator, "data_parties": _data_parties(ctx),
            "step": ctx.step.name}


def _rows(ctx: StepContext, features: list[str]) -> tuple[Any, np.ndarray | None]:
    """This data party's feature rows and labels, or (the number of features, None) at the aggregator."""
    if ctx.role == AGGREGATOR:
        return len(features), None
    label = ctx.label_column
    assert label is not None  # a data party names its label column (the spec requires it)
    return ctx.data[features].to_numpy(dtype=np.float64), ctx.data[label].to_numpy(dtype=np.float64)


def _own_auc(y: np.ndarray | None, p: np.ndarray) -> dict[str, Any]:
    """A data party's AUC of the joint model on its own (training) rows, where both classes occur."""
    if y is None or np.unique(y).size < 2:
        return {}
    return {"auc_own_rows": roc_auc(y, p), "rows": int(y.size), "bad_rate": float(np.mean(y))}


def _write_json(ctx: StepContext, name: str, doc: dict[str, Any]) -> None:
    write_json_atomic(ctx.artefact_dir / name, doc)


def run_woe(ctx: StepContext) -> StepResult:
    t0 = time.monotonic()
    features = list(ctx.param(FeatureParams).features)
    p, rounds = ctx.param(HorizontalWoeParams), ctx.param(RoundParams)
    x, y = _rows(ctx, features)
    ctx.progress(f"[{ctx.party}] pooled bins and WOE of {len(features)} feature(s) over secure aggregation")
    est = HorizontalWoeBinning(**dataclasses.asdict(p), **dataclasses.asdict(rounds)).fit(x, y, **_fit_args(ctx))
    table = est.table_
    _write_json(ctx, BINNING_FILE, {"features": features, **est.to_dict()})
    rows = []
    for f, name in enumerate(features):
        for b, label in enumerate(bin_labels(table.edges[f])):
            if table.bads[f, b] + table.goods[f, b] > 0:
                rows.append({"feature": name, "bin": label, "bads": int(table.bads[f, b]),
                             "goods": int(table.goods[f, b]), "woe": float(table.woe[f, b]), "iv": float(table.iv[f])})
    pd.DataFrame(rows).to_csv(ctx.artefact_dir / WOE_TABLE_FILE, index=False)
    order = np.argsort(-table.iv, kind="stable")
    iv = [{"feature": features[k], "iv": float(table.iv[k])} for k in order]
    out: dict[str, Any] = {"iv": iv, "seconds": time.monotonic() - t0}
    if y is not None:
        out["rows"] = int(y.size)
    return StepResult(out, [BINNING_FILE, WOE_TABLE_FILE])


def run_scorecard(ctx: StepContext) -> StepResult:
    t0 = time.monotonic()
    own, lr_params, rounds = ctx.param(ScorecardStepParams), ctx.param(HorizontalLRParams), ctx.param(RoundParams)
    path = ctx.artefact_of(own.woe_step, BINNING_FILE)
    doc = json.loads(path.read_text(encoding="utf-8"))
    binning = HorizontalWoeBinning.from_dict(doc, str(path))
    features = [str(f) for f in doc.get("features", [])]
    table = binning.table_
    keep = [k for k, v in enumerate(table.iv.tolist()) if v >= own.min_iv]  # the same everywhere: pooled IVs
    if not keep:
        raise DataError(f"{where(ctx.step, ctx.spec)}: no feature has a pooled IV of at least min_iv {own.min_iv:g} "
                        f"(the highest is {float(np.max(table.iv, initial=0.0)):.3f}); lower params.min_iv")
    x, y = _rows(ctx, features)
    woe_x = len(keep) if y is None else binning.transform(x)[:, keep]
    ctx.progress(f"[{ctx.party}] scorecard: logistic regression on the WOE of {len(keep)} feature(s)")
    lr = HorizontalLogisticRegression(**dataclasses.asdict(lr_params), **dataclasses.asdict(rounds))
    lr.fit(woe_x, y, **_fit_args(ctx))
    scaling = {"pdo": own.pdo, "base_score": own.base_score, "base_odds": own.base_odds}
    model = FederatedScorecard(features, binning, keep, lr, scaling)
    points = model.card.table()
    _write_json(ctx, SCORECARD_FILE, {**model.to_dict(), "points": points})
    pd.DataFrame(points).to_csv(ctx.artefact_dir / SCORECARD_TABLE_FILE, index=False)
    kept = model.kept
    out: dict[str, Any] = {
        "features": kept, "coef": dict(zip(kept, lr.coef_.tolist(), strict=True)), "intercept": lr.intercept_,
        "iterations": lr.result_.iterations, "contributors": lr.result_.contributors, "scaling": scaling,
        "seconds": time.monotonic() - t0,
    }
    if y is not None:
        out.update(_own_auc(y, model.predict_proba(x)))
    return StepResult(out, [SCORECARD_FILE, SCORECARD_TABLE_FILE])


def run_boosting(ctx: StepContext) -> StepResult:
    t0 = time.monotonic()
    features = list(ctx.param(FeatureParams).features)
    p, rounds = ctx.param(HorizontalGBDTParams), ctx.param(RoundParams)
    x, y = _rows(ctx, features)
    ctx.progress(f"[{ctx.party}] horizontal boosting: {p.n_estimators} trees of depth {p.max_depth}")
    est = HorizontalGBDTClassifier(**dataclasses.asdict(p), **dataclasses.asdict(rounds)).fit(x, y, **_fit_args(ctx))
    _write_json(ctx, MODEL_FILE, {"features": features, **est.to_dict()})
    model = est.model_
    out: dict[str, Any] = {"trees": len(model.trees), "rounds": model.rounds, "contributors": model.contributors,
                           "seconds": time.monotonic() - t0}
    if y is not None:
        out.update(_own_auc(y, est.predict_proba(x)[:, 1]))
    return StepResult(out, [MODEL_FILE])


def preview(step: StepSpec, spec: JobSpec, parsed: ParsedParams) -> list[PlannedDisclosure]:
    """Every round of a fit is one secure aggregation with the sum sent back: its whole catalogue."""
    return plan(DISCLOSURES, step, spec)


def _kind(name: str, run: Any, check: Any, params: tuple[type, ...], summary: str, check_data: Any = None) -> StepKind:
    return StepKind(name, run, check, params=(*params, RoundParams), protocols=(PROTOCOL,), summary=summary,
                    check_data=check_data, preview=preview, roles=HORIZONTAL_ROLES)


WOE = _kind("horizontal_woe", run_woe, _check_features, (FeatureParams, HorizontalWoeParams),
            "pooled bins, WOE and IV of data parties' common columns (secure aggregation)", _check_feature_data)
SCORECARD = _kind("horizontal_scorecard", run_scorecard, _check_scorecard, (ScorecardStepParams, HorizontalLRParams),
                  "logistic-regression scorecard on pooled WOE, points per bin (secure aggregation)")
BOOSTING = _kind("horizontal_boosting", run_boosting, _check_features, (FeatureParams, HorizontalGBDTParams),
                 "gradient-boosted trees on pooled histograms (secure aggregation)", _check_feature_data)
