"""Step adapters: the registry that turns a spec's ``[[step]]`` into a protocol call.

An adapter is a function ``run(ctx: StepContext) -> StepResult``: it reads its params, this
party's data and earlier steps' outputs from ``ctx``, calls a protocol over ``ctx.channel`` (under
the step's name, so ledger entries name the step), and returns JSON-able outputs plus any files it
wrote into ``ctx.artefact_dir``. An optional ``check(step, spec)`` validates params before the job
starts, raising :class:`JobSpecError` that names the field (use :func:`param_error`).

Registered kinds: ``secure_sum`` (here) and the credit pipeline ``psi``, ``woe``, ``secureboost``,
``evaluate`` (:mod:`misuan.node.steps_psi`, :mod:`misuan.node.credit_steps`), in :func:`_register_builtin_steps` at the end of this
module. A spec naming any other kind is refused up front with a clear :class:`JobSpecError`.

Outputs are JSON (small: sizes, metrics, IV tables); bulky or binary results are artefacts that a
later step opens with :meth:`StepContext.artefact_of`. In-memory objects do not survive a resume,
so a step that later steps build on persists what they need. For example a PSI adapter::

    def run_psi(ctx: StepContext) -> StepResult:
        ids = ctx.data[ctx.dataset.id_column].tolist()
        peer = ctx.params["peer"]                      # checked by check_psi against ctx.spec
        res = psi(ctx.channel, ids, peer, reveal=ctx.params.get("reveal", "both"))
        np.save(ctx.artefact_dir / "rows.npy", res.local_rows)   # loaded with allow_pickle=False
        return StepResult({"size": res.size}, ["rows.npy"])

    # in a later step: rows = np.load(ctx.artefact_of("psi", "rows.npy"), allow_pickle=False)
    #                  df = ctx.data.iloc[rows]       # the shared customers, in the common order
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from misuan.errors import DataError, JobSpecError, MissingColumnError
from misuan.net.channel import Channel
from misuan.node.spec import DatasetSpec, JobSpec, StepSpec
from misuan.protocols.secure_sum import secure_sum

__all__ = [
    "StepContext",
    "StepKind",
    "StepResult",
    "param_error",
    "register_step",
    "registered_kinds",
    "step_kind",
]


@dataclasses.dataclass
class StepResult:
    """What a step returns: JSON-able ``outputs`` and paths of files written under the artefact dir."""

    outputs: dict[str, Any]
    artefacts: list[str] = dataclasses.field(default_factory=list)  # relative to ctx.artefact_dir


@dataclasses.dataclass
class StepContext:
    """Everything a step adapter may use, as one party."""

    spec: JobSpec
    step: StepSpec
    party: str
    role: str
    channel: Channel  # spans exactly the step's parties
    outputs: Mapping[str, Mapping[str, Any]]  # this party's outputs of earlier steps, by step name
    artefact_dir: Path  # staging directory; kept only if the step succeeds
    load_data: Callable[[], pd.DataFrame]
    progress: Callable[[str], None] = lambda msg: None
    # artefact directories of the earlier steps (they survive a resume; in-memory state does not,
    # so a step that later steps build on, e.g. PSI's row indices, saves what they need as a file)
    earlier_artefacts: Mapping[str, Path] = dataclasses.field(default_factory=dict)

    @property
    def job_id(self) -> str:
        return self.spec.job_id

    @property
    def params(self) -> Mapping[str, Any]:
        return self.step.params

    @property
    def dataset(self) -> DatasetSpec:
        return self.spec.party(self.party).dataset

    def artefact_of(self, step: str, name: str) -> Path:
        """The file ``name`` that earlier step ``step`` wrote (listed in its ``StepResult.artefacts``)."""
        if step not in self.earlier_artefacts:
            raise JobSpecError(
                f"step {self.step.name!r} needs the output of step {step!r}, which does not run before it; "
                f"earlier steps are {list(self.earlier_artefacts)}"
            )
        path = self.earlier_artefacts[step] / name
        if not path.is_file():
            raise JobSpecError(f"step {step!r} has no artefact {name!r}, which step {self.step.name!r} needs")
        return path

    @property
    def data(self) -> pd.DataFrame:
        """This party's dataset, loaded and checked once per job run (see :mod:`misuan.node.data`)."""
        return self.load_data()


StepRun = Callable[[StepContext], StepResult]
StepCheck = Callable[[StepSpec, JobSpec], None]


@dataclasses.dataclass(frozen=True)
class StepKind:
    kind: str
    run: StepRun
    check: StepCheck | None = None


_REGISTRY: dict[str, StepKind] = {}


def register_step(kind: str, run: StepRun, check: StepCheck | None = None, *, replace: bool = False) -> None:
    """Register the adapter for ``kind`` (one of :data:`misuan.node.spec.STEP_KINDS`)."""
    if kind in _REGISTRY and not replace:
        raise ValueError(f"a step adapter for {kind!r} is already registered (pass replace=True)")
    _REGISTRY[kind] = StepKind(kind, run, check)


def registered_kinds() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def step_kind(step: StepSpec, spec: JobSpec) -> StepKind:
    """The adapter for ``step``, or a :class:`JobSpecError` if this build has none."""
    try:
        return _REGISTRY[step.kind]
    except KeyError:
        raise JobSpecError(
            f"{_where(step, spec)}.kind: this build of misuan has no adapter for {step.kind!r} yet; "
            f"available kinds are {sorted(_REGISTRY)}"
        ) from None


def _where(step: StepSpec, spec: JobSpec) -> str:
    return f"step[{spec.steps.index(step) + 1}] {step.name!r}"


def param_error(step: StepSpec, spec: JobSpec, key: str, problem: str) -> JobSpecError:
    """A :class:`JobSpecError` naming ``step[i] 'name'.params.<key>``."""
    return JobSpecError(f"{_where(step, spec)}.params.{key}: {problem}")


def check_known_params(step: StepSpec, spec: JobSpec, allowed: Sequence[str]) -> None:
    unknown = sorted(set(step.params) - set(allowed))
    if unknown:
        raise JobSpecError(f"{_where(step, spec)}.params: unknown key(s) {unknown}; allowed keys are {sorted(allowed)}")


# --- secure_sum ----------------------------------------------------------------------------------
# params: columns = ["a", "b"] (every party sums the same columns) or columns = { bank = [...], ... }
# (per party, equal lengths); scale = 1 (integer: each column total is rounded from sum * scale);
# count_rows = false (append each party's row count). Output: the joint totals.
_INT64_MAX = 2**63 - 1


def _secure_sum_columns(step: StepSpec, party: str) -> list[str]:
    cols = step.params["columns"]
    return list(cols[party]) if isinstance(cols, Mapping) else list(cols)


def check_secure_sum(step: StepSpec, spec: JobSpec) -> None:
    check_known_params(step, spec, ("columns", "scale", "count_rows"))
    cols = step.params.get("columns")
    if cols is None:
        raise param_error(step, spec, "columns", 'missing; list the numeric columns to add, e.g. columns = ["balance"]')
    if isinstance(cols, Mapping):
        if set(cols) != set(step.parties):
            raise param_error(step, spec, "columns", f"give columns for exactly the step's parties {list(step.parties)}")
        lists = list(cols.values())
    else:
        lists = [cols]
    for lst in lists:
        if not isinstance(lst, list) or not all(isinstance(c, str) and c for c in lst):
            raise param_error(step, spec, "columns", f"write a list of column names, not {lst!r}")
    if len({len(lst) for lst in lists}) != 1:
        raise param_error(step, spec, "columns", "every party must list the same number of columns")
    scale = step.params.get("scale", 1)
    if isinstance(scale, bool) or not isinstance(scale, int) or not 1 <= scale <= 10**12:
        raise param_error(step, spec, "scale", f"give an integer from 1 to 10**12, not {scale!r}")
    if not isinstance(step.params.get("count_rows", False), bool):
        raise param_error(step, spec, "count_rows", "write true or false")
    if not lists[0] and not step.params.get("count_rows", False):
        raise param_error(step, spec, "columns", "list at least one column or set count_rows = true")


def _column_total(df: pd.DataFrame, column: str, scale: int, who: str) -> int:
    if column not in df.columns:
        raise MissingColumnError(f"{who} has no column {column!r} to add (secure_sum params.columns)")
    values = pd.to_numeric(df[column], errors="coerce")
    if values.isna().any():
        lines = ", ".join(str(int(i) + 2) for i in df.index[values.isna().to_numpy()][:5])
        raise DataError(f"{who}: column {column!r} has missing or non-numeric values on file line(s) {lines}")
    scaled = np.rint(values.to_numpy(dtype=np.float64) * scale)
    if scale == 1 and not np.array_equal(scaled, values.to_numpy(dtype=np.float64)):
        raise DataError(f"{who}: column {column!r} has fractional values; set params.scale (e.g. 100 for cents)")
    total = int(sum(int(v) for v in scaled))  # Python ints: no silent int64 wrap-around
    if abs(total) > _INT64_MAX:
        raise DataError(f"{who}: the total of column {column!r} times scale {scale} does not fit in 64 bits")
    return total


def run_secure_sum(ctx: StepContext) -> StepResult:
    scale = int(ctx.params.get("scale", 1))
    columns = _secure_sum_columns(ctx.step, ctx.party)
    df = ctx.data
    who = f"{ctx.party}'s dataset {ctx.dataset.path.name}"
    vector = [_column_total(df, c, scale, who) for c in columns]
    if ctx.params.get("count_rows", False):
        vector.append(len(df))
    total = secure_sum(ctx.channel, np.array(vector, dtype=np.int64), step=ctx.step.name)
    ints = [int(v) for v in total]
    out: dict[str, Any] = {"scale": scale, "columns": columns, "total": ints[: len(columns)]}
    out["values"] = [v / scale for v in out["total"]]
    if ctx.params.get("count_rows", False):
        out["row_count"] = ints[-1]
    return StepResult(out)


def _register_builtin_steps() -> None:
    register_step("secure_sum", run_secure_sum, check_secure_sum)
    # adapters import StepContext from this module, so they are imported here, not at the top
    from misuan.node import credit_steps as cs
    from misuan.node import steps_psi

    register_step("psi", steps_psi.run_psi, steps_psi.check_psi)
    register_step("woe", cs.run_woe, cs.check_woe)
    register_step("secureboost", cs.run_secureboost, cs.check_secureboost)
    register_step("evaluate", cs.run_evaluate, cs.check_evaluate)


_register_builtin_steps()
