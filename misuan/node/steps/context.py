"""What a step adapter gets and returns: :class:`StepContext`, :class:`StepResult`, :class:`StepKind`.

An adapter is a function ``run(ctx: StepContext) -> StepResult``: it reads its parsed params
(``ctx.param(WoeParams)``), this party's data and earlier steps' outputs from ``ctx``, calls a
protocol over ``ctx.channel`` (under the step's name, so ledger entries name the step), and returns
JSON-able outputs plus any files it wrote into ``ctx.artefact_dir``.

A :class:`StepKind` declares the adapter, the parameter dataclasses its ``params`` table is parsed
into (once per party, before anything connects: :func:`parse_step_params`), an optional ``check``
of what the params cannot say alone (which parties run it), and the protocols it speaks (their
versions are compared in the job hello).

Outputs are JSON (small: sizes, metrics, IV tables); bulky or binary results are artefacts that a
later step opens with :meth:`StepContext.artefact_of`. In-memory objects do not survive a resume,
so a step that later steps build on persists what they need (PSI's ``rows.npy``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from misuan.errors import JobSpecError
from misuan.net.channel import Channel
from misuan.net.protocol import ProtocolInfo
from misuan.node.spec import DatasetSpec, JobSpec, StepSpec
from misuan.params import parse_params

__all__ = ["StepContext", "StepKind", "StepResult", "check_known_params", "param_error", "parse_step_params", "where"]

_P = TypeVar("_P")


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
    parsed: Mapping[type, Any] = dataclasses.field(default_factory=dict)  # parse_step_params' result

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

    def param(self, cls: type[_P]) -> _P:
        """This step's parsed parameters of dataclass ``cls`` (one of its kind's ``params``)."""
        if cls not in self.parsed:
            raise TypeError(f"step kind {self.step.kind!r} declares no parameters of {cls.__name__}")
        return self.parsed[cls]

    @property
    def data(self) -> pd.DataFrame:
        """This party's dataset, loaded and checked once per job run (see :mod:`misuan.node.data`)."""
        return self.load_data()


StepRun = Callable[[StepContext], StepResult]
StepCheck = Callable[[StepSpec, JobSpec], None]


@dataclasses.dataclass(frozen=True)
class StepKind:
    """One kind of step: its adapter, its declared parameters, extra checks and the protocols it speaks."""

    kind: str
    run: StepRun
    check: StepCheck | None = None  # what params alone cannot say (which parties, earlier steps)
    params: tuple[type, ...] = ()  # dataclasses of misuan.params; the spec's params table is parsed into them
    protocols: tuple[ProtocolInfo, ...] = ()
    summary: str = ""


def parse_step_params(kind: StepKind, step: StepSpec, spec: JobSpec) -> dict[type, Any]:
    """The step's ``params`` table parsed into ``kind.params`` (unknown keys and bad values refused)."""
    if not kind.params:
        return {}
    parsed = parse_params(tuple(kind.params), step.params, f"{where(step, spec)}.params", JobSpecError)
    return dict(zip(kind.params, parsed, strict=True))


def where(step: StepSpec, spec: JobSpec) -> str:
    return f"step[{spec.steps.index(step) + 1}] {step.name!r}"


def param_error(step: StepSpec, spec: JobSpec, key: str, problem: str) -> JobSpecError:
    """A :class:`JobSpecError` naming ``step[i] 'name'.params.<key>``."""
    return JobSpecError(f"{where(step, spec)}.params.{key}: {problem}")


def check_known_params(
step: StepSpec, spec: JobSpec, allowed: Sequence[str]) -> None:
    unknown = sorted(set(step.params) - set(allowed))
    if unknown:
        raise JobSpecError(f"{where(step, spec)}.params: unknown key(s) {unknown}; allowed keys are {sorted(allowed)}")


