"""The ``summary`` a report is rendered from: typed dataclasses, parsed and checked from a plain dict.

The job runner hands :func:`misuan.report.render_report` a JSON-able dict; :meth:`Summary.from_dict`
turns it into these dataclasses, refusing missing keys, unknown keys (typos), wrong types, non-finite
numbers and inconsistent cross-references with a :class:`~misuan.errors.DataError` that names the
path of the offending value (``summary.iv[3].bins[0].woe``). Optional fields have defaults.

The rows the credit steps write (:class:`FeatureIv`, :class:`WoeBin`, :class:`FeatureImportance`) are
declared below the node in :mod:`misuan.ml.outputs` and re-exported here as part of the summary.
The optional ``lending`` part (credit decisions from the joint model's PDs, the product's caps
check, disclosure, notice and copy checks) is declared in :mod:`misuan.report.lending_schema` and
re-exported here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import math
import numbers
import types
import typing
from typing import Any, Literal, TypeVar, Union

from misuan.errors import DataError
from misuan.ml.outputs import FeatureImportance, FeatureIv, WoeBin
from misuan.report.lending_schema import (
    CapResult,
    CopyCheck,
    CopyFinding,
    DeclineNotice,
    ExampleLoan,
    Lending,
    LendingDecisions,
    LendingProduct,
    NotChecked,
    NoticeReason,
    check_lending,
)

__all__ = [
    "MODEL_KEYS",
    "PLAINTEXT",
    "CapResult",
    "CopyCheck",
    "CopyFinding",
    "DeclineNotice",
    "Evaluation",
    "ExampleLoan",
    "FeatureImportance",
    "FeatureIv",
    "Job",
    "Ledger",
    "LedgerEntry",
    "Lending",
    "LendingDecisions",
    "LendingProduct",
    "NotChecked",
    "NoticeReason",
    "Party",
    "Psi",
    "StepRun",
    "Summary",
    "WoeBin",
]

# the models the comparison needs, and the optional plaintext baseline (for the cost of privacy); a
# baseline needs both tables on one machine, so a production job may not have it
MODEL_KEYS = ("joint", "bank_only")
PLAINTEXT = "plaintext"
Scalar = str | int | float | bool | None


@dataclasses.dataclass(frozen=True)
class Party:
    """One institution of the job."""

    name: str  # the party name used everywhere else in the summary ("bank", "partner")
    role: Literal["label_party", "feature_party"]
    rows: int  # rows of its input table
    columns: int  # feature columns of its input table (the ID and the label not counted)
    organisation: str = ""  # display name, e.g. "Example Bank"
    machine: str = ""  # where its node ran, if it differs from Job.machine
    bytes_sent: int | None = None  # traffic of the whole job, from its channel statistics
    bytes_received: int | None = None


@dataclasses.dataclass(frozen=True)
class StepRun:
    """One step of the job and how long it took."""

    name: str  # the step's name in the job spec
    kind: str  # psi, woe, secureboost, evaluate, ...
    seconds: float
    status: str = "done"


@dataclasses.dataclass(frozen=True)
class Job:
    job_id: str
    started_at: str  # ISO 8601, e.g. "2026-11-23T10:00:00Z"
    finished_at: str
    machine: str  # e.g. "2 cores, 4 GiB, Debian 12, Python 3.11"
    parties: list[Party]
    steps: list[StepRun] = dataclasses.field(default_factory=list)
    title: str = "Joint credit-risk model"
    dataset: str = ""  # e.g. "UCI default of credit card clients (CC BY 4.0)"
    misuan_version: str = ""


@dataclasses.dataclass(frozen=True)
class Psi:
    """The private set intersection step."""

    rows: dict[str, int]  # party name -> number of IDs it put into PSI
    intersection_size: int
    mode: str  # who learned the shared IDs: "both", "size" (nobody, only the count) or a party name
    normalization: str = ""  # e.g. "strip, case-fold"
    seconds: float | None = None


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """Predictions on the hold-out customers; the report computes AUC, KS and the curves from them."""

    dataset: str  # in words, e.g. "hold-out: 30 % of the 21,000 shared customers, stratified"
    y_true: list[int]  # 1 = defaulted
    # model key -> predicted PD per hold-out customer: "joint" and "bank_only" required, "plaintext"
    # (XGBoost on the pooled rows) optional, any others shown too
    scores: dict[str, list[float]]
    n_train: int | None = None
    model_names: dict[str, str] = dataclasses.field(default_factory=dict)  # key -> display name


@dataclasses.dataclass(frozen=True)
class LedgerEntry:
    """One disclosure: a row of ``misuan.audit.ledger.Ledger.export_json`` (see also
    :class:`misuan.net.disclosure.Disclosure`); the chain fields are optional here."""

    step: str
    discloser: str
    recipient: str
    what: str
    shape: list[int]
    form: str  # plaintext | ciphertext | blinded | aggregate
    detail: dict[str, Any] = dataclasses.field(default_factory=dict)  # small JSON values
    seq: int | None = None
    job_id: str = ""
    recorded_at: str = ""
    prev_hash: str = ""
    hash: str = ""


@dataclasses.dataclass(frozen=True)
class Ledger:
    """One party's disclosure ledger as exported after the job."""

    party: str  # whose ledger this is
    head: str  # hex hash at the head of the hash chain
    verified: bool  # True when the whole chain was re-hashed and matched
    entries: list[LedgerEntry]
    verified_at: str = ""  # ISO 8601
    note: str = ""  # e.g. the verifier's message when verification failed


@dataclasses.dataclass(frozen=True)
class ScorecardRow:
    """One bin of one feature in the federated scorecard: the bank's, or the partner's as far as the
    partner shares its table (``bin`` and ``points`` None where it does not)."""

    feature: str
    bin: str | None = None
    points: float | None = None
    party: str = "bank"
    count: int | None = None  # training rows in the bin (the owner's own figure)
    event_rate: float | None = None  # their default rate (the bank's own features)
    woe: float | None = None  # the bin's WOE, when the scorecard was fitted on WOE encoding


@dataclasses.dataclass(frozen=True)
class ScorecardExample:
    """A held-out customer scored jointly: score, PD and reasons over both parties' features."""

    score: float
    pd: float
    reasons: list[str]


@dataclasses.dataclass(frozen=True)
class Scorecard:
    """The federated scorecard (vertical LR): the bank's part of the points table, hold-out figures."""

    auc: float
    ks: float
    iterations: int
    rows: list[ScorecardRow]  # the bank's features, then the partner's as far as it shares them
    examples: list[ScorecardExample]
    pdo: float = 20.0
    base_score: float = 600.0
    base_odds: float = 50.0


@dataclasses.dataclass(frozen=True)
class Summary:
    job: Job
    psi: Psi
    iv: list[FeatureIv]
    evaluation: Evaluation
    feature_importance: list[FeatureImportance]
    ledgers: list[Ledger]
    secureboost: dict[str, Scalar]  # the SecureBoost parameters, name -> value
    woe_definition: str = "WOE = ln(share of goods in the bin / share of bads in the bin)"
    lending: Lending | None = None  # credit decisions from the joint model's PDs; optional
    scorecard: Scorecard | None = None  # the federated scorecard (vertical LR); optional

    @classmethod
    def from_dict(cls, data: Any) -> Summary:
        """Parse and check ``data``; raise :class:`DataError` naming the first problem."""
        summary = _parse(cls, data, "summary")
        summary.check()
        return summary

    def check(self) -> None:
        """Checks across fields: party references, dates, model keys, lengths; raise :class:`DataError`."""
        for key in ("started_at", "finished_at"):
            value = getattr(self.job, key)
            try:
                when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise DataError(
                    f"report summary: summary.job.{key} is {value!r:.60}, not an ISO 8601 time like 2026-11-23T10:00:00Z"
                ) from None
            if when.tzinfo is None:
                raise DataError(f"report summary: summary.job.{key} needs a time zone (add Z for UTC): {value!r:.60}")
        if _when(self.job.finished_at) < _when(self.job.started_at):
            raise DataError("report summary: summary.job.finished_at is before summary.job.started_at")
        names = [p.name for p in self.job.parties]
        if len(set(names)) != len(names):
            raise DataError(f"report summary: summary.job.parties has duplicate names {names}")
        label_parties = [p.name for p in self.job.parties if p.role == "label_party"]
        if len(label_parties) != 1:
            raise DataError(
                f"report summary: summary.job.parties needs exactly one label_party, found {label_parties}"
            )
        refs: list[tuple[str, str]] = [(f"summary.psi.rows[{k!r}]", k) for k in self.psi.rows]
        refs += [(f"summary.iv[{i}].party", f.party) for i, f in enumerate(self.iv)]
        refs += [(f"summary.feature_importance[{i}].party", f.party) for i, f in enumerate(self.feature_importance)]
        refs += [(f"summary.ledgers[{i}].party", g.party) for i, g in enumerate(self.ledgers)]
        for path, name in refs:
            if name not in names:
                raise DataError(f"report summary: {path} is {name!r}, not one of the job's parties {names}")
        if self.psi.mode not in ("both", "size", *names):
            raise DataError(
                f"report summary: summary.psi.mode is {self.psi.mode!r}; use 'both', 'size' or a party name {names}"
            )
        ev = self.evaluation
        missing = [k for k in MODEL_KEYS if k not in ev.scores]
        if missing:
            raise DataError(f"report summary: summary.evaluation.scores lacks the models {missing}")
        for key, s in ev.scores.items():
            if len(s) != len(ev.y_true):
                raise DataError(
                    f"report summary: summary.evaluation.scores[{key!r}] has {len(s)} scores "
                    f"for {len(ev.y_true)} labels in summary.evaluation.y_true"
                )
        if any(v not in (0, 1) for v in ev.y_true) or len(set(ev.y_true)) != 2:
            raise DataError("report summary: summary.evaluation.y_true must hold 0s and 1s, and both")
        for i, f in enumerate(self.iv):
            if not f.bins:
                raise DataError(f"report summary: summary.iv[{i}].bins is empty")
        if self.lending is not None:
            check_lending(self.lending, len(ev.y_true), list(ev.scores))


_T = TypeVar("_T")


def _when(iso: str) -> dt.datetime:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))


def _fail(path: str, problem: str) -> DataError:
    return DataError(f"report summary: {path} {problem}")


def _parse(tp: Any, value: Any, path: str) -> Any:
    """Check ``value`` against the type ``tp`` and convert dicts to the dataclasses."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _parse_dataclass(tp, value, path)
    if origin in (Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None:
            if type(None) in options:
                return None
            raise _fail(path, "must not be null")
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _parse(option, value, path)
            except DataError as exc:
                errors.append(exc)
        raise errors[0] if len(errors) == 1 else _fail(path, f"has unexpected value {value!r:.60}")
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise _fail(path, f"is {value!r:.60}; use one of {list(allowed)}")
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise _fail(path, f"must be a list, not {type(value).__name__}")
        (item,) = typing.get_args(tp)
        return [_parse(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise _fail(path, f"must be an object (dict), not {type(value).__name__}")
        _, item = typing.get_args(tp)
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise _fail(path, f"has a non-string key {k!r:.60}")
            out[k] = _parse(item, v, f"{path}[{k!r}]")
        return out
    if tp is bool:
        if not isinstance(value, bool):
            raise _fail(path, f"must be true or false, not {value!r:.60}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise _fail(path, f"must be an integer, not {value!r:.60}")
        return int(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise _fail(path, f"must be a number, not {value!r:.60}")
        if not math.isfinite(float(value)):
            raise _fail(path, f"must be finite, not {value!r} (smooth empty bins before reporting)")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise _fail(path, f"must be a string, not {type(value).__name__}")
        return value
    if tp is type(None):
        if value is not None:
            raise _fail(path, "must be null")
        return None
    raise TypeError(f"schema type {tp!r} at {path} is not supported")  # a bug in this module


@functools.cache
def _fields(cls: type) -> tuple[dict[str, Any], dict[str, dataclasses.Field[Any]]]:
    """Resolved type hints and fields of a schema class (resolving is slow: done once per class)."""
    return typing.get_type_hints(cls), {f.name: f for f in dataclasses.fields(cls)}


def _parse_dataclass(cls: type[_T], value: Any, path: str) -> _T:
    if isinstance(value, cls):
        return value
    if not isinstance(value, dict):
        raise _fail(path, f"must be an object (dict) for {cls.__name__}, not {type(value).__name__}")
    hints, fields = _fields(cls)  # type: ignore[arg-type]
    unknown = sorted(set(value) - set(fields), key=str)
    if unknown:
        raise _fail(path, f"has unknown keys {unknown}; known keys are {sorted(fields)}")
    kwargs = {}
    for name, field in fields.items():
        if name in value:
            kwargs[name] = _parse(hints[name], value[name], f"{path}.{name}")
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise _fail(f"{path}.{name}", f"is missing (a required key of {cls.__name__})")
    return cls(**kwargs)
