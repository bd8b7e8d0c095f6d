"""Job step ``monitor``: the joint model's stability over a new period (:mod:`misuan.protocols.monitor`).

Spec::

    [[step]]
    kind = "monitor"
    params = { period_column = "month", reference = "2026-06", current = "2026-11", score_column = "score" }

Each party's dataset holds rows of both periods, told apart by ``period_column`` (read as text).
Each party computes the stability index of each of its own features between the two periods
(:mod:`misuan.ml.monitoring`: sample-size-aware levels); the label party also that of its
``score_column`` (the scores it recorded, higher = riskier) and, with its labels as the period's
outcomes, the back-test by score band. The feature party shares only its features' indices and
levels; the label party sends back the period's alerts. No rows are aligned or exchanged.

Outputs: each party's own stabilities (with their bins) and the alerts; the label party's also hold
the feature party's indices, the score's stability and the back-test. Artefact: ``monitoring.json``.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
import pandas as pd

from misuan.audit.ledger import write_json_atomic
from misuan.errors import DataError, MissingColumnError
from misuan.ml.monitoring import ALERT, STABLE, Stability, backtest, stability
from misuan.node.data import CheckedDataset, check_numeric_features
from misuan.node.spec import JobSpec, StepSpec
from misuan.node.steps import alignment as al
from misuan.node.steps.context import ParsedParams, StepContext, StepKind, StepResult, param_error, where
from misuan.node.steps.preview import PlannedDisclosure, plan
from misuan.params import check_params, param
from misuan.protocols.monitor import DISCLOSURES, PROTOCOL, monitor_feature_party, monitor_label_party

__all__ = ["KIND", "MonitorParams", "run_monitor"]

MONITORING_FILE = "monitoring.json"


@dataclasses.dataclass(frozen=True)
class MonitorParams:
    period_column: str = param("", "the column that tells the two periods apart (read as text)")
    reference: str = param("", "its value on the reference period's rows (e.g. the training window)")
    current: str = param("", "its value on the rows of the period to monitor")
    score_column: str = param("", "the label party's recorded scores (higher: riskier); empty: no score stability or back-test")
    n_bins: int = param(10, "quantile bins of the reference period per feature and for the score", ge=2, le=50)
    auc_drop: float = param(0.03, "an AUC lower than the reference period's by more than this is an alert", ge=0.0, le=1.0)

    def __post_init__(self) -> None:
        check_params(self, "monitor")


def check_monitor(step: StepSpec, spec: JobSpec, parsed: ParsedParams) -> None:
    al.step_parties(step, spec)
    p: MonitorParams = parsed[MonitorParams]
    for key in ("period_column", "reference", "current"):
        if not getattr(p, key):
            raise param_error(step, spec, key, 'give it, e.g. period_column = "month", reference = "2026-06", current = "2026-11"')
    if p.reference == p.current:
        raise param_error(step, spec, "current", f"must differ from reference ({p.reference!r})")


def _monitored(data: CheckedDataset, p: MonitorParams) -> list[str]:
    """The party's features to watch: its features but the period and score columns."""
    return [f for f in data.features if f not in (p.period_column, p.score_column)]


def _periods(data: CheckedDataset, p: MonitorParams, field: str) -> tuple[np.ndarray, np.ndarray]:
    df = data.frame
    if p.period_column not in df.columns:
        raise MissingColumnError(f"{data.name} has no column {p.period_column!r} ({field}.period_column)")
    period = df[p.period_column].astype(str)
    ref, cur = (period == p.reference).to_numpy(), (period == p.current).to_numpy()
    for name, sel, value in (("reference", ref, p.reference), ("current", cur, p.current)):
        if not sel.any():
            raise DataError(f"{data.name}: no row has {p.period_column} = {value!r} (the {name} period; {field})")
    return ref, cur


def check_monitor_data(step: StepSpec, spec: JobSpec, parsed: ParsedParams, data: CheckedDataset) -> None:
    """The period column with rows of both periods, numeric features, and the label party's score column."""
    p: MonitorParams = parsed[MonitorParams]
    field = f"{where(step, spec)}.params"
    _periods(data, p, field)
    check_numeric_features(dataclasses.replace(data, features=tuple(_monitored(data, p))))
    if p.score_column and data.spec.label_column is not None:
        if p.score_column not in data.frame.columns:
            raise MissingColumnError(f"{data.name} has no column {p.score_column!r} ({field}.score_column)")
        if not pd.api.types.is_numeric_dtype(data.frame[p.score_column]) or data.frame[p.score_column].isna().any():
            raise DataError(f"{data.name}: score column {p.score_column!r} must be a number on every row ({field}.score_column)")


def _own_stability(ctx: StepContext, p: MonitorParams) -> list[Stability]:
    ref, cur = _periods(ctx.own_data, p, where(ctx.step, ctx.spec))
    df = ctx.data
    return [stability(f, df.loc[ref, f].to_numpy(dtype=np.float64), df.loc[cur, f].to_numpy(dtype=np.float64), p.n_bins)
            for f in _monitored(ctx.own_data, p)]


def _sentence(party: str, s: tuple[str, float, str]) -> str:
    return f"{party}'s feature {s[0]}: stability index {s[1]:.3f} ({s[2]})"


def run_monitor(ctx: StepContext) -> StepResult:
    t0 = time.monotonic()
    p = ctx.param(MonitorParams)
    own = _own_stability(ctx, p)
    out: dict[str, Any] = {"features": [s.to_dict() for s in own]}
    peer = al.peer(ctx)
    if ctx.role != al.LABEL_PARTY:
        out["alerts"] = monitor_feature_party(ctx.channel, peer, [s.name for s in own], [s.index for s in own],
                                              [s.level for s in own], step=ctx.step.name)
    else:
        checks, score_alerts = _label_party_checks(ctx, p)
        out.update(checks)

        def alerts_for(theirs: list[tuple[str, float, str]]) -> list[str]:
            lines = [_sentence(ctx.party, (s.name, s.index, s.level)) for s in own if s.level != STABLE]
            return lines + [_sentence(peer, t) for t in theirs if t[2] != STABLE] + score_alerts

        theirs, out["alerts"] = monitor_label_party(ctx.channel, peer, alerts_for, step=ctx.step.name)
        out["peer_features"] = [{"party": peer, "name": n, "index": i, "level": lv} for n, i, lv in theirs]
    out["seconds"] = time.monotonic() - t0
    write_json_atomic(ctx.artefact_dir / MONITORING_FILE, out)
    return StepResult(out, [MONITORING_FILE])


def _label_party_checks(ctx: StepContext, p: MonitorParams) -> tuple[dict[str, Any], list[str]]:
    """The score's stability and the back-test (when the label party names its score column), and their alerts."""
    if not p.score_column:
        return {}, []
    ref, cur = _periods(ctx.own_data, p, where(ctx.step, ctx.spec))
    score = ctx.data[p.score_column].to_numpy(dtype=np.float64)
    label = al.labels(ctx, ctx.data)
    s = stability(p.score_column, score[ref], score[cur], p.n_bins)
    bt = backtest(score[ref], label[ref], score[cur], label[cur], n_bands=p.n_bins, auc_drop=p.auc_drop)
    alerts = [f"score {p.score_column}: stability index {s.index:.3f} ({s.level})"] if s.level != STABLE else []
    if bt.level == ALERT:
        alerts.append(f"back-test: AUC {bt.auc_current:.3f} in the current period against {bt.auc_reference:.3f} "
                      f"in the reference period (a drop of more than {p.auc_drop:g})")
    return {"score": s.to_dict(), "backtest": bt.to_dict()}, alerts


def preview_monitor(step: StepSpec, spec: JobSpec, parsed: ParsedParams) -> list[PlannedDisclosure]:
    return plan(DISCLOSURES, step, spec)


KIND = StepKind(
    "monitor", run_monitor, check_monitor, params=(MonitorParams,), protocols=(PROTOCOL,),
    summary="stability of each party's features and the score over a new period, back-testing, alerts",
    check_data=check_monitor_data, preview=preview_monitor,
)
