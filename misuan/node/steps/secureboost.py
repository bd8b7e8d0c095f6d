"""Job step ``secureboost``: vertical gradient boosting (:mod:`misuan.protocols.secureboost`) on the
rows PSI aligned (``rows.npy``, written with ``reveal = "both"``), less a hold-out for ``evaluate``.

Spec::

    [[step]]
    kind = "secureboost"
    params = { n_estimators = 30, max_depth = 4, learning_rate = 0.3, test_fraction = 0.3 }

The params table is flat: :class:`~misuan.protocols.secureboost.BoostingParams` (the
hyperparameters, the same on both parties) and :class:`SecureBoostStepParams` (the hold-out). The
step trains a classifier (logistic loss) with no evaluation set, so the two fields that
:class:`~misuan.protocols.secureboost.SecureBoostParams` adds to ``BoostingParams``, ``objective``
and ``early_stopping_rounds``, are not keys of the step.

Both parties split the aligned rows into train and hold-out by a seeded hash of each customer's
normalised ID (nothing is exchanged for it), train on the train rows, and write ``model.json``
(this party's model part) and ``split.npz``. Outputs: ``params``, ``n_train``, ``n_test``; the
label party also ``feature_importance`` (by total gain, largest first) and ``history`` (per tree:
seconds, phase timings).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np

from misuan.ml.outputs import importance_from_secureboost
from misuan.ml.secureboost import SecureBoostClassifier
from misuan.node.data import CheckedDataset
from misuan.node.spec import JobSpec, StepSpec
from misuan.node.steps import alignment as al
from misuan.node.steps.context import ParsedParams, StepContext, StepKind, StepResult, param_error
from misuan.node.steps.preview import PlannedDisclosure, plan
from misuan.params import ParamError, check_params, param
from misuan.protocols.secureboost import PROTOCOL, BoostingParams, SecureBoostParams
from misuan.protocols.secureboost import disclosures as sb_disclosures

__all__ = [
    "KIND", "MODEL_FILE", "SPLIT_FILE", "SecureBoostStepParams", "check_secureboost", "check_secureboost_data",
    "run_secureboost",
]

MODEL_FILE = "model.json"
SPLIT_FILE = "split.npz"


@dataclasses.dataclass(frozen=True)
class SecureBoostStepParams:
    """What the step adds to the hyperparameters: which customers are held out for ``evaluate``."""

    test_fraction: float = param(0.3, "fraction of the shared customers held out for the evaluate step", ge=0, lt=1)
    split_seed: int = param(0, "seed of the hash of customer IDs that picks the held-out customers")

    def __post_init__(self) -> None:
        check_params(self, "secureboost")


def check_secureboost(step: StepSpec, spec: JobSpec, parsed: ParsedParams) -> None:
    """What the params cannot say alone: the two parties, and hyperparameters fit for a classifier
    (checked as the training will check them: :class:`SecureBoostParams` with logistic loss)."""
    al.step_parties(step, spec)
    try:
        _classifier_params(parsed[BoostingParams])
    except ParamError as exc:
        raise param_error(step, spec, exc.field, exc.problem) from None


def check_secureboost_data(step: StepSpec, spec: JobSpec, parsed: ParsedParams, data: CheckedDataset) -> None:
    """Numeric features on both parties, both classes among the label party's labels."""
    al.check_credit_data(step, spec, data, features=True, both_classes=True)


def _classifier_params(boosting: BoostingParams) -> SecureBoostParams:
    """The step's hyperparameters as the classifier trains on them (logistic loss, no early stopping)."""
    return SecureBoostParams(objective="binary:logistic", **dataclasses.asdict(boosting))


def run_secureboost(ctx: StepContext) -> StepResult:
    t0 = time.monotonic()
    boosting, holdout = ctx.param(BoostingParams), ctx.param(SecureBoostStepParams)
    est = SecureBoostClassifier(**dataclasses.asdict(boosting))
    rows = al.aligned_rows(ctx)
    train, test = al.holdout_split(al.normalised_ids(ctx, rows.ids()), holdout.test_fraction, holdout.split_seed)
    np.savez(ctx.artefact_dir / SPLIT_FILE, train=train, test=test)
    label_party, _ = al.step_parties(ctx.step, ctx.spec)
    fit_rows = rows.take(train)
    X = fit_rows.features()  # a streamed dataset's columns are read one at a time while binning
    y = fit_rows.labels() if ctx.role == al.LABEL_PARTY else None
    n_trees = boosting.n_estimators
    ctx.progress(f"[{ctx.party}] SecureBoost: {n_trees} trees on {len(train)} rows ({len(test)} held out)")
    est.fit(
        X, y, channel=ctx.channel, label_party=label_party, step=ctx.step.name,
        on_tree=None if ctx.role != al.LABEL_PARTY else lambda rec: ctx.progress(
            f"[{ctx.party}]   tree {int(rec['tree']) + 1}/{n_trees} done in {rec['seconds']:.1f} s"
        ),
    )
    est.save_model(ctx.artefact_dir / MODEL_FILE)
    out: dict[str, Any] = {"params": est.get_params(), "n_train": int(len(train)), "n_test": int(len(test)),
                           "seconds": time.monotonic() - t0}
    if ctx.role == al.LABEL_PARTY:
        importance = importance_from_secureboost(est.model_["importance"])
        out["feature_importance"] = sorted(importance, key=lambda r: (-r["gain"], r["party"], r["feature"]))
        out["history"] = est.history_
    return StepResult(out, [MODEL_FILE, SPLIT_FILE])


def preview_secureboost(step: StepSpec, spec: JobSpec, parsed: ParsedParams) -> list[PlannedDisclosure]:
    d, p = sb_disclosures, parsed[BoostingParams]
    he_kinds = [d.PUBLIC_KEY]
    ot_kinds = [d.OT_SESSION, d.OT_BASE, d.OT_POINTS, d.OT_COLUMNS]
    trees = p.n_estimators > 1 or not p.first_tree_label_only  # some tree uses the feature party's histograms
    if trees:
        he_kinds.append(d.GRADIENTS)
        ot_kinds.append(d.MASKED_GRADIENTS)
    method_kinds = {"he": he_kinds, "ot": ot_kinds, "auto": he_kinds + ot_kinds}[p.histograms]
    kinds = [d.SCHEMA, *method_kinds, d.TREE_SHAPES]
    if trees:
        kinds += [d.NODE_ROWS, d.HISTOGRAMS, d.SPLIT_CHOICE, d.PARTITION]
        if p.subsample < 1:
            kinds.append(d.SAMPLED_ROWS)
    # whether a split lands on the feature party's features is for the data to decide; with "auto" the
    # label party picks OT or HE from the data's size
    maybe = [d.SPLIT_CHOICE, d.PARTITION] + (method_kinds if p.histograms == "auto" else [])
    return plan(kinds, step, spec, data_dependent=tuple(maybe))


KIND = StepKind(
    "secureboost", run_secureboost, check_secureboost, params=(BoostingParams, SecureBoostStepParams),
    protocols=(PROTOCOL,), summary="vertical gradient boosting (SecureBoost)", check_data=check_secureboost_data,
    preview=preview_secureboost, streams=True,
)
