"""Job step ``fairness``: the joint model's decisions audited by protected group, without moving rows.

Spec::

    [[step]]
    kind = "fairness"
    params = { eval_step = "evaluate", approve_below = 0.25, policy = "us", enforce = true }

On the hold-out rows that the ``eval_step`` (an ``evaluate`` step) scored, the label party's
decision is "approve" when the joint PD is below ``approve_below``. The protected attributes are
those of the ``policy`` (:mod:`misuan.lending.fairness`: ``us``, ``cn``), found among each party's
columns by name (or the ``attributes`` listed). Where the feature party holds one, the label party's
per-row decision, outcome and PD are summed by its groups under encryption
(:mod:`misuan.protocols.group_sums`, small groups merged); where the label party holds one, it
groups its rows itself. The label party then computes the approval-rate ratio (four-fifths rule),
the equal-opportunity gap and calibration by group, with the policy's thresholds.

A protected attribute that is also a model feature is refused before anything connects when the
policy says ``refuse`` and ``enforce`` is true; otherwise it is a warning in the outputs.
Outputs (label party): ``audits`` (per attribute: groups, metrics, findings), ``findings``,
``model_feature_warnings``; artefact ``fairness.json``. The feature party: the groups it revealed.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np

from misuan.audit.ledger import write_json_atomic
from misuan.errors import DataError, JobSpecError
from misuan.lending.errors import RuleFileError
from misuan.lending.fairness import (
    FairnessPolicy,
    GroupCounts,
    audit_groups,
    group_rows,
    load_policy,
    pricing_inputs_check,
)
from misuan.node.data import CheckedDataset
from misuan.node.spec import JobSpec, StepSpec
from misuan.node.steps import alignment as al
from misuan.node.steps.context import ParsedParams, StepContext, StepKind, StepResult, param_error, where
from misuan.node.steps.evaluate import EvaluateParams
from misuan.node.steps.preview import PlannedDisclosure, plan
from misuan.node.steps.secureboost import SPLIT_FILE
from misuan.params import check_params, param
from misuan.protocols.group_sums import (
    DISCLOSURES,
    PROTOCOL,
    merge_small_groups,
    sums_feature_party,
    sums_label_party,
)

__all__ = ["KIND", "FairnessParams", "run_fairness"]

FAIRNESS_FILE = "fairness.json"
PD_SCALE = 1 << 20  # the PD's fixed point in the encrypted sums


@dataclasses.dataclass(frozen=True)
class FairnessParams:
    eval_step: str = param("evaluate", "the evaluate step whose hold-out rows and joint PDs are audited")
    approve_below: float = param(0.25, "a hold-out customer is approved when the joint PD is below this", gt=0.0, lt=1.0)
    policy: str = param("us", "the protected attributes and thresholds: misuan/lending/rules/protected_<policy>.toml")
    attributes: tuple[str, ...] = param((), "the columns to audit (default: every column the policy names)")
    enforce: bool = param(True, "refuse a job whose model uses an attribute the policy refuses (else: a warning)")

    def __post_init__(self) -> None:
        check_params(self, "fairness")


def _policy(step: StepSpec, spec: JobSpec, p: FairnessParams) -> FairnessPolicy:
    try:
        return load_policy(p.policy)
    except RuleFileError as exc:
        raise param_error(step, spec, "policy", str(exc)) from None


def check_fairness(step: StepSpec, spec: JobSpec, parsed: ParsedParams) -> None:
    al.step_parties(step, spec)
    p: FairnessParams = parsed[FairnessParams]
    _policy(step, spec, p)
    earlier = spec.steps[: spec.steps.index(step)]
    ev = next((s for s in earlier if s.name == p.eval_step), None)
    if ev is None or ev.kind != "evaluate":
        raise param_error(step, spec, "eval_step", f"name an evaluate step before this one, not {p.eval_step!r}")


def _protected_features(data: CheckedDataset, policy: FairnessPolicy) -> list[tuple[str, str, str]]:
    """(column, attribute id, action) for each model feature of this party that the policy protects."""
    return [(f, a.id, a.as_model_feature) for f in data.features if (a := policy.attribute_of(f)) is not None]


def check_fairness_data(step: StepSpec, spec: JobSpec, parsed: ParsedParams, data: CheckedDataset) -> None:
    """A refused protected attribute among this party's model features, when enforced; listed attributes exist."""
    p: FairnessParams = parsed[FairnessParams]
    policy = _policy(step, spec, p)
    refused = [(f, a) for f, a, action in _protected_features(data, policy) if action == "refuse"]
    if refused and p.enforce:
        f, a = refused[0]
        attr = policy.attribute_of(f)
        raise DataError(f"{data.name}: feature {f!r} is the protected attribute {a!r} under policy {policy.jurisdiction} "
                        f"({attr.source if attr else ''}); a credit model may not use it: remove it from the features, "
                        f"or set {where(step, spec)}.params.enforce = false to audit the model as it is")
    if p.attributes and data.spec.label_column is None and not set(p.attributes) & set(data.frame.columns):
        raise DataError(f"{data.name} has none of the columns {list(p.attributes)} to audit "
                        f"({where(step, spec)}.params.attributes)")


def _attributes(ctx: StepContext, policy: FairnessPolicy, p: FairnessParams) -> list[str]:
    cols = list(p.attributes) or list(ctx.data.columns)
    return [c for c in cols if c in ctx.data.columns and policy.attribute_of(c) is not None]


def _holdout(ctx: StepContext, p: FairnessParams) -> np.ndarray:
    model_step = ctx.param(EvaluateParams, step=p.eval_step).model_step
    with np.load(ctx.artefact_of(model_step, SPLIT_FILE), allow_pickle=False) as split:
        return np.asarray(split["test"])


def _warnings(ctx: StepContext, policy: FairnessPolicy) -> list[str]:
    return [f"{ctx.party}'s model feature {f!r} is the protected attribute {a!r} under policy {policy.jurisdiction} "
            f"({action})" for f, a, action in _protected_features(ctx.own_data, policy)]


def _peer_warnings(ctx: StepContext, policy: FairnessPolicy) -> list[str]:
    """The same warnings for the peer's features, where the spec lists them (both parties read the spec)."""
    peer = al.peer(ctx)
    ds = ctx.spec.party(peer).dataset
    listed = [] if ds is None or ds.features == "all" else list(ds.features)
    return [f"{peer}'s model feature {f!r} is the protected attribute {a.id!r} under policy {policy.jurisdiction} "
            f"({a.as_model_feature})" for f in listed if (a := policy.attribute_of(f)) is not None]


def run_fairness(ctx: StepContext) -> StepResult:
    t0 = time.monotonic()
    p = ctx.param(FairnessParams)
    policy = _policy(ctx.step, ctx.spec, p)
    df = al.aligned(ctx).iloc[_holdout(ctx, p)].reset_index(drop=True)
    names = _attributes(ctx, policy, p)
    groups = {c: group_rows(policy.attribute_of(c), df[c].to_numpy()) for c in names}  # type: ignore[arg-type]
    warnings = _warnings(ctx, policy)
    if ctx.role != al.LABEL_PARTY:
        revealed = sums_feature_party(ctx.channel, al.peer(ctx), groups, min_group_size=policy.min_group_size,
                                      step=ctx.step.name)
        out: dict[str, Any] = {"groups": revealed, "model_feature_warnings": warnings}
    else:
        out = _label_party_audit(ctx, p, policy, groups, len(df)) | {"model_feature_warnings": warnings}
        out["peer_model_feature_warnings"] = _peer_warnings(ctx, policy)
    out["seconds"] = time.monotonic() - t0
    write_json_atomic(ctx.artefact_dir / FAIRNESS_FILE, out)
    return StepResult(out, [FAIRNESS_FILE])


def _label_party_audit(ctx: StepContext, p: FairnessParams, policy: FairnessPolicy,
                       own_groups: dict[str, tuple[np.ndarray, list[str]]], n: int) -> dict[str, Any]:
    ev = ctx.outputs[p.eval_step]
    pd_, y = np.asarray(ev["scores"], dtype=np.float64), np.asarray(ev["y_true"], dtype=np.int64)
    if len(pd_) != n:
        raise JobSpecError(f"step {ctx.step.name!r}: {p.eval_step!r} scored {len(pd_)} rows, the hold-out has {n}")
    approved = (pd_ < p.approve_below).astype(np.int64)
    repaid = 1 - y
    columns = np.column_stack([np.ones(n, np.int64), approved, approved * repaid, repaid, y,
                               np.rint(pd_ * PD_SCALE).astype(np.int64)])
    by_attr = sums_label_party(ctx.channel, al.peer(ctx), columns, step=ctx.step.name)
    for c, (idx, labels) in own_groups.items():  # the label party's own protected columns: grouped at home
        idx2, kept = merge_small_groups(idx, labels, policy.min_group_size)  # the same guard as at the partner
        by_attr[c] = {lab: columns[idx2 == g].sum(axis=0).astype(object) for g, lab in enumerate(kept)}
    audits = []
    for column, sums in by_attr.items():
        attr = policy.attribute_of(column)
        if attr is None:
            continue  # the feature party audited a column this policy does not protect: not ours to judge
        counts = [GroupCounts(label, int(s[0]), int(s[1]), int(s[2]), int(s[3]), int(s[4]), int(s[5]) / PD_SCALE)
                  for label, s in sums.items()]
        audits.append(audit_groups(column, attr, counts, policy).to_dict())
    pricing = pricing_inputs_check(policy)
    return {"policy": policy.jurisdiction, "approve_below": p.approve_below, "rows": n,
            "approval_rate": float(approved.mean()) if n else 0.0, "audits": audits,
            "pricing": {"risk_factors": list(policy.risk_factors), "problems": pricing},
            "findings": [f for a in audits for f in a["findings"]] + pricing}


def preview_fairness(step: StepSpec, spec: JobSpec, parsed: ParsedParams) -> list[PlannedDisclosure]:
    return plan(DISCLOSURES, step, spec)


KIND = StepKind(
    "fairness", run_fairness, check_fairness, params=(FairnessParams,), protocols=(PROTOCOL,),
    summary="approval, equal-opportunity and calibration gaps by protected group (the partner's attributes encrypted)",
    check_data=check_fairness_data, preview=preview_fairness,
)
