"""Job step ``evaluate``: joint scoring of a ``secureboost`` step's hold-out rows; AUC and KS.

Spec::

    [[step]]
    kind = "evaluate"
    params = { model_step = "secureboost" }

Both parties load their model part (``model.json``) and the train/hold-out split (``split.npz``)
of the step ``model_step`` and predict the hold-out rows jointly
(:func:`misuan.protocols.secureboost.predict_label_party`); only the label party receives the
scores. Its outputs: ``n_test``, ``auc``, ``ks``, ``y_true``, ``scores``, ``train_ids``, ``test_ids``.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from misuan.errors import JobError, JobSpecError
from misuan.ml.metrics import ks_statistic, roc_auc
from misuan.ml.secureboost import SecureBoostClassifier
from misuan.node.data import CheckedDataset
from misuan.node.spec import JobSpec, StepSpec
from misuan.node.steps import alignment as al
from misuan.node.steps.context import ParsedParams, StepContext, StepKind, StepResult
from misuan.node.steps.preview import PlannedDisclosure, plan
from misuan.node.steps.secureboost import MODEL_FILE, SPLIT_FILE
from misuan.params import check_params, param, parse_params
from misuan.protocols.secureboost import PROTOCOL, BoostingParams
from misuan.protocols.secureboost import disclosures as sb_disclosures

__all__ = ["KIND", "EvaluateParams", "check_evaluate", "check_evaluate_data", "run_evaluate"]


@dataclasses.dataclass(frozen=True)
class EvaluateParams:
    model_step: str = param("secureboost", "name of the secureboost step whose model and hold-out rows to score")

    def __post_init__(self) -> None:
        check_params(self, "evaluate")


def check_evaluate(step: StepSpec, spec: JobSpec, parsed: ParsedParams) -> None:
    """What the params cannot say: the step runs between one label party and one feature party."""
    al.step_parties(step, spec)


def check_evaluate_data(step: StepSpec, spec: JobSpec, parsed: ParsedParams, data: CheckedDataset) -> None:
    """Numeric features on both parties (the model's splits compare them)."""
    al.check_credit_data(step, spec, data, features=True, both_classes=False)


def run_evaluate(ctx: StepContext) -> StepResult:
    t0 = time.monotonic()
    model_step = ctx.param(EvaluateParams).model_step
    est = SecureBoostClassifier.load_model(ctx.artefact_of(model_step, MODEL_FILE))
    with np.load(ctx.artefact_of(model_step, SPLIT_FILE), allow_pickle=False) as split:
        train, test = split["train"], split["test"]
    if len(test) == 0:
        raise JobSpecError(f"step {ctx.step.name!r}: step {model_step!r} held out no rows (test_fraction = 0)")
    rows = al.aligned_rows(ctx)
    X = rows.take(test).feature_frame()
    scores = est.predict_proba(X, channel=ctx.channel, step=ctx.step.name)
    if ctx.role != al.LABEL_PARTY:
        return StepResult({"n_test": int(len(test)), "seconds": time.monotonic() - t0})
    if scores is None:
        raise JobError(f"step {ctx.step.name!r}: the joint prediction returned no scores to the label party")
    p = np.asarray(scores)[:, 1] if np.ndim(scores) == 2 else np.asarray(scores)
    y = rows.take(test).labels()
    ids = rows.ids().astype(str)
    out = {
        "n_test": int(len(test)), "auc": roc_auc(y, p), "ks": ks_statistic(y, p),
        "y_true": y.tolist(), "scores": [float(v) for v in p],
        "train_ids": ids.iloc[train].tolist(), "test_ids": ids.iloc[test].tolist(),
        "seconds": time.monotonic() - t0,
    }
    return StepResult(out)


def preview_evaluate(step: StepSpec, spec: JobSpec, parsed: ParsedParams) -> list[PlannedDisclosure]:
    """The feature party answers for the hold-out rows in the model step's prediction mode."""
    model = next(s for s in spec.steps if s.name == parsed[EvaluateParams].model_step)
    boosting = parse_params((BoostingParams,), {k: v for k, v in model.params.items() if k in _BOOSTING_KEYS}, model.name, JobSpecError)[0]
    kind = sb_disclosures.LEAF_SETS if boosting.prediction_mode == "leaves" else sb_disclosures.DECISIONS
    return plan([kind], step, spec)


_BOOSTING_KEYS = {f.name for f in dataclasses.fields(BoostingParams)}

KIND = StepKind(
    "evaluate", run_evaluate, check_evaluate, params=(EvaluateParams,), protocols=(PROTOCOL,),
    summary="joint scoring of the hold-out rows: AUC and KS", check_data=check_evaluate_data, preview=preview_evaluate, streams=True,
)
