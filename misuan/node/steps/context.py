"""What a step adapter gets and returns: :class:`StepContext`, :class:`StepResult`, :class:`StepKind`.

An adapter is a function ``run(ctx: StepContext) -> StepResult``: it reads its parsed params
(``ctx.param(WoeParams)``), this party's checked data and earlier steps' outputs from ``ctx``, calls
a protocol over ``ctx.channel`` (under the step's name, so ledger entries name the step), and
returns JSON-able outputs plus any files it wrote into ``ctx.artefact_dir``.

A :class:`StepKind` declares the adapter, the parameter dataclasses its ``params`` table is parsed
into (once per party, before anything connects: :func:`parse_step_params`), an optional ``check``
of what the params cannot say alone (which parties run it, rules across its params classes), an
optional ``check_data`` of this party's dataset against what the step needs of it (columns it
reads, numeric features, both label classes), and the protocols it speaks (their versions are
compared in the job hello). Both checks get the parsed params and run in
:func:`misuan.node.runner.check_runnable`, so a step's run meets neither problem again.

Outputs are JSON (small: sizes, metrics, IV tables); bulky or binary results are artefacts that a
later step opens with :meth:`StepContext.artefact_of`. In-memory objects do not survive a resume,
so a step that later steps build on persists what they need (PSI's ``rows.npy``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from misuan.errors import JobSpecError
from misuan.net.channel import Channel
from misuan.net.protocol import VERTICAL_ROLES, ProtocolInfo
from misuan.node.data import CheckedDataset
from misuan.node.spec import DatasetSpec, JobSpec, StepSpec
from misuan.node.steps.preview import PlannedDisclosure
from misuan.params import parse_params

__all__ = [
    "ParsedParams", "StepCheck", "StepContext", "StepDataCheck", "StepKind", "StepResult", "StepRun",
    "param_error", "parse_step_params", "where",
]

_P = TypeVar("_P")
ParsedParams = Mapping[type, Any]  # a step's params: each of its kind's params classes -> its instance


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
    checked_data: CheckedDataset | None  # this party's dataset as check_runnable read and checked it (None: an aggregator)
    # every step's parsed params, by step name (check_runnable's): a step reads its own and those
    # of the earlier steps it builds on (PSI's normalisation) without parsing anything again
    parsed: Mapping[str, ParsedParams]
    progress: Callable[[str], None] = lambda msg: None
    # artefact directories of the earlier steps (they survive a resume; in-memory state does not,
    # so a step that later steps build on, e.g. PSI's row indices, saves what they need as a file)
    earlier_artefacts: Mapping[str, Path] = dataclasses.field(default_factory=dict)
    # a directory that survives a failed or killed run of this step (PSI's spilled buckets, to resume);
    # the step removes what it no longer needs. None: the step has none (a step must then keep no state)
    work_dir: Path | None = None

    @property
    def job_id(self) -> str:
        return self.spec.job_id

    @property
    def own_data(self) -> CheckedDataset:
        """This party's checked dataset; a party without one (an aggregator) is a JobSpecError."""
        if self.checked_data is None:
            raise JobSpecError(f"step {self.step.name!r} needs the data of {self.party}, which as {self.role} holds none")
        return self.checked_data

    @property
    def dataset(self) -> DatasetSpec:
        return self.own_data.spec

    @property
    def features(self) -> list[str]:
        """This party's feature columns (those listed in its spec, or all but the id and label)."""
        return list(self.own_data.features)

    @property
    def label_column(self) -> str | None:
        """The label column (0/1 on every row) of a label or data party; ``None`` for any other party."""
        return self.own_data.spec.label_column

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

    def param(self, cls: type[_P], step: str | None = None) -> _P:
        """The parsed parameters of dataclass ``cls`` of this step, or of the step named ``step`` (PSI's)."""
        if step is None:
            if cls not in self.parsed[self.step.name]:
                raise TypeError(f"step kind {self.step.kind!r} declares no parameters of {cls.__name__}")
            return self.parsed[self.step.name][cls]
        if cls not in self.parsed.get(step, {}):
            raise JobSpecError(
                f"step {self.step.name!r} needs a step named {step!r} with {cls.__name__} parameters before it"
            )
        return self.parsed[step][cls]

    @property
    def data(self) -> pd.DataFrame:
        """This party's dataset, read and checked once per job run (see :mod:`misuan.node.data`)."""
        return self.own_data.frame


StepRun = Callable[[StepContext], StepResult]
# (step, job spec, its parsed params): raises a JobSpecError naming the field
StepCheck = Callable[[StepSpec, JobSpec, ParsedParams], None]
# (step, job spec, its parsed params, this party's checked dataset): raises a DataError naming the file
StepDataCheck = Callable[[StepSpec, JobSpec, ParsedParams, CheckedDataset], None]
# the step's disclosures before it runs (misuan.node.steps.preview): catalogue entries with party names
StepPreview = Callable[[StepSpec, JobSpec, ParsedParams], list[PlannedDisclosure]]


@dataclasses.dataclass(frozen=True)
class StepKind:
    """One kind of step: its adapter, its declared parameters, extra checks and the protocols it speaks."""

    kind: str
    run: StepRun
    check: StepCheck | None = None  # what params alone cannot say (which parties, rules across classes)
    params: tuple[type, ...] = ()  # dataclasses of misuan.params; the spec's params table is parsed into them
    protocols: tuple[ProtocolInfo, ...] = ()
    summary: str = ""
    check_data: StepDataCheck | None = None  # what the step needs of a taking-part party's own dataset
    preview: StepPreview | None = None  # what the step will disclose, for the operator's consent
    roles: tuple[str, ...] = VERTICAL_ROLES  # the roles of the parties it runs between
    # whether it runs on a streamed dataset (stream = true: only the ID, label and feature columns kept)
    streams: bool = False


def parse_step_params(kind: StepKind, step: StepSpec, spec: JobSpec) -> dict[type, Any]:
    """The step's ``params`` table parsed into ``kind.params`` (unknown keys and bad values refused,
    also for a kind that declares no params)."""
    parsed = parse_params(tuple(kind.params), step.params, f"{where(step, spec)}.params", JobSpecError)
    return dict(zip(kind.params, parsed, strict=True))


def where(step: StepSpec, spec: JobSpec) -> str:
    return f"step[{spec.steps.index(step) + 1}] {step.name!r}"


def param_error(step: StepSpec, spec: JobSpec, key: str, problem: str) -> JobSpecError:
    """A :class:`JobSpecError` naming ``step[i] 'name'.params.<key>``."""
    return JobSpecError(f"{where(step, spec)}.params.{key}: {problem}")
