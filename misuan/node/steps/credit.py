"""Step adapters of the joint credit-risk pipeline after PSI (:mod:`misuan.node.steps_psi`):
``woe`` -> ``secureboost`` -> ``evaluate``.

Each adapter turns a spec's ``[[step]]`` into one protocol call over the step's channel (under the
step's name, so ledger rows name it) and persists what later steps need as artefacts, so a resumed
job does not depend on memory:

- they align rows with PSI's ``rows.npy`` (this party's row indices of the shared customers in the
  order both parties agree on; written only with ``reveal = "both"``, which these steps need);
- ``secureboost`` splits those rows into train and hold-out by a seeded hash of each customer's
  normalised ID, which both parties compute identically (nothing is exchanged for it), trains on the
  train rows, and
  writes ``model.json`` (this party's model part) and ``split.npz``;
- ``evaluate`` scores the hold-out rows jointly; only the label party receives the scores.

Every step works on exactly two parties: the label party and one feature party.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from misuan.errors import ConfigError, JobError, JobSpecError
from misuan.ml.metrics import ks_statistic, roc_auc
from misuan.ml.secureboost import SecureBoostClassifier
from misuan.ml.woe import woe_iv_plaintext
from misuan.node.spec import JobSpec, StepSpec
from misuan.node.steps import alignment as al
from misuan.node.steps.context import StepContext, StepKind, StepResult, check_known_params, param_error
from misuan.protocols.binning import BinningConfig
from misuan.protocols.stats import woe_iv_feature_party, woe_iv_label_party
from misuan.report.schema import importance_from_secureboost, iv_from_woe_result

LABEL_PARTY = al.LABEL_PARTY
FEATURE_PARTY = al.FEATURE_PARTY

WOE_PARAMS = (
    "method", "methods", "n_bins", "n_prebins", "min_bin_size", "smoothing", "chi2_threshold",
    "share_edges", "share_iv", "min_key_bits", "workers", "scheme", "key_bits", "include_own",
)
SB_PARAMS = (
    "n_estimators", "max_depth", "learning_rate", "reg_lambda", "gamma", "min_child_weight", "subsample",
    "colsample_bytree", "max_bin", "base_score", "first_tree_label_only", "he_scheme", "key_bits",
    "frac_bits", "n_jobs", "random_state", "test_fraction", "split_seed",
)
EVAL_PARAMS = ("model_step",)


# --- shared ---------------------------------------------------------------------------------------

def _binning(step: StepSpec, spec: JobSpec) -> BinningConfig:
    p = dict(step.params)
    kw: dict[str, Any] = {k: p[k] for k in ("method", "n_bins", "n_prebins", "min_bin_size", "smoothing",
                                            "chi2_threshold", "share_edges", "share_iv", "min_key_bits", "workers") if k in p}
    if "methods" in p:
        kw["methods"] = dict(p["methods"])
    try:
        return BinningConfig(**kw)
    except (ConfigError, TypeError) as exc:
        raise param_error(step, spec, "params", str(exc)) from None


def check_woe(step: StepSpec, spec: JobSpec) -> None:
    check_known_params(step, spec, WOE_PARAMS)
    al.step_parties(step, spec)
    _binning(step, spec)
    if step.params.get("scheme", "ou") not in ("ou", "paillier"):
        raise param_error(step, spec, "scheme", f"must be 'ou' or 'paillier', not {step.params['scheme']!r}")


def run_woe(ctx: StepContext) -> StepResult:
    from misuan.crypto.he import generate_keypair

    t0 = time.monotonic()
    config = _binning(ctx.step, ctx.spec)
    df = al.aligned(ctx)
    if ctx.role == LABEL_PARTY:
        y = al.labels(ctx, df)
        keys = generate_keypair(ctx.params.get("scheme", "ou"), int(ctx.params.get("key_bits", 2048)))
        result = woe_iv_label_party(ctx.channel, al.peer(ctx), y, config=config, keypair=keys, step=ctx.step.name)
        doc = result.to_dict()
        features = iv_from_woe_result(doc, al.peer(ctx))
        if ctx.params.get("include_own", True):
            # the label party's own features, in the clear on its own side: nothing is revealed
            own = woe_iv_plaintext(al.numeric_matrix(ctx, df, al.feature_columns(ctx)), y, config)
            features += iv_from_woe_result(own.to_dict(), ctx.party)
        pd.DataFrame(result.table()).to_csv(ctx.artefact_dir / "woe_table.csv", index=False)
        out = {"features": features, "n_rows": int(len(y)), "seconds": time.monotonic() - t0}
        return StepResult(out, ["woe_table.csv"])
    cols = al.feature_columns(ctx)
    fres = woe_iv_feature_party(ctx.channel, al.peer(ctx), al.numeric_matrix(ctx, df, cols), config=config, step=ctx.step.name)
    return StepResult({"bins": fres.to_dict(), "seconds": time.monotonic() - t0})


# --- secureboost -----------------------------------------------------------------------------------
def _sb_estimator(step: StepSpec, spec: JobSpec) -> SecureBoostClassifier:
    kw = {k: v for k, v in step.params.items() if k in SB_PARAMS and k not in ("test_fraction", "split_seed")}
    try:
        est = SecureBoostClassifier(**kw)
        est._sgb_params()  # validates every hyperparameter now, before the job starts
        return est
    except (ConfigError, TypeError) as exc:
        raise param_error(step, spec, "params", str(exc)) from None


def check_secureboost(step: StepSpec, spec: JobSpec) -> None:
    check_known_params(step, spec, SB_PARAMS)
    al.step_parties(step, spec)
    _sb_estimator(step, spec)
    tf = step.params.get("test_fraction", 0.3)
    if not isinstance(tf, (int, float)) or not 0 <= tf < 1:
        raise param_error(step, spec, "test_fraction", f"must be in [0, 1), not {tf!r}")



def run_secureboost(ctx: StepContext) -> StepResult:
    t0 = time.monotonic()
    est = _sb_estimator(ctx.step, ctx.spec)
    df = al.aligned(ctx)
    train, test = al.holdout_split(
        al.normalised_ids(ctx, df), float(ctx.params.get("test_fraction", 0.3)), int(ctx.params.get("split_seed", 0))
    )
    np.savez(ctx.artefact_dir / "split.npz", train=train, test=test)
    label_party, _ = al.step_parties(ctx.step, ctx.spec)
    X = al.numeric_matrix(ctx, df, al.feature_columns(ctx)).iloc[train].reset_index(drop=True)
    y = al.labels(ctx, df)[train] if ctx.role == LABEL_PARTY else None
    ctx.progress(f"[{ctx.party}] SecureBoost: {est.n_estimators} trees on {len(train)} rows ({len(test)} held out)")
    est.fit(
        X, y, channel=ctx.channel, label_party=label_party, step=ctx.step.name,
        on_tree=None if ctx.role != LABEL_PARTY else lambda rec: ctx.progress(
            f"[{ctx.party}]   tree {int(rec['tree']) + 1}/{est.n_estimators} done in {rec['seconds']:.1f} s"
        ),
    )
    est.save_model(ctx.artefact_dir / "model.json")
    out: dict[str, Any] = {"params": est.get_params(), "n_train": int(len(train)), "n_test": int(len(test)),
                           "seconds": time.monotonic() - t0}
    if ctx.role == LABEL_PARTY:
        imp = est.model_["importance"]
        out["feature_importance"] = importance_from_secureboost(imp)
        out["history"] = est.history_
    return StepResult(out, ["model.json", "split.npz"])


# --- evaluate --------------------------------------------------------------------------------------
def check_evaluate(step: StepSpec, spec: JobSpec) -> None:
    check_known_params(step, spec, EVAL_PARAMS)
    al.step_parties(step, spec)


def run_evaluate(ctx: StepContext) -> StepResult:
    t0 = time.monotonic()
    model_step = str(ctx.params.get("model_step", "secureboost"))
    est = SecureBoostClassifier.load_model(ctx.artefact_of(model_step, "model.json"))
    with np.load(ctx.artefact_of(model_step, "split.npz"), allow_pickle=False) as split:
        train, test = split["train"], split["test"]
    if len(test) == 0:
        raise JobSpecError(f"step {ctx.step.name!r}: step {model_step!r} held out no rows (test_fraction = 0)")
    df = al.aligned(ctx)
    X = al.numeric_matrix(ctx, df, al.feature_columns(ctx)).iloc[test].reset_index(drop=True)
    scores = est.predict_proba(X, channel=ctx.channel, step=ctx.step.name)
    if ctx.role != LABEL_PARTY:
        return StepResult({"n_test": int(len(test)), "seconds": time.monotonic() - t0})
    if scores is None:
        raise JobError(f"step {ctx.step.name!r}: the joint prediction returned no scores to the label party")
    p = np.asarray(scores)[:, 1] if np.ndim(scores) == 2 else np.asarray(scores)
    y = al.labels(ctx, df)[test]
    ids = df[ctx.dataset.id_column].astype(str)
    out = {
        "n_test": int(len(test)), "auc": roc_auc(y, p), "ks": ks_statistic(y, p),
        "y_true": y.tolist(), "scores": [float(v) for v in p],
        "train_ids": ids.iloc[train].tolist(), "test_ids": ids.iloc[test].tolist(),
        "seconds": time.monotonic() - t0,
    }
    return StepResult(out)


WOE_KIND = StepKind("woe", run_woe, check_woe, summary="WOE/IV of the feature party's columns against the label party's labels")
SECUREBOOST_KIND = StepKind("secureboost", run_secureboost, check_secureboost, summary="vertical gradient boosting (SecureBoost)")
EVALUATE_KIND = StepKind("evaluate", run_evaluate, check_evaluate, summary="joint scoring of the hold-out rows: AUC and KS")
