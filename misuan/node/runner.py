"""Run a job spec's steps in order, as one party.

Layout under a party's directory (``<workdir>/<party>`` for ``misuan run``, the node's ``data_dir``
for a node)::

    ledger.sqlite                      the party's disclosure ledger (all its jobs)
    jobs/<job_id>/state.json           job status, per-step status and hashes, ledger head, error
    jobs/<job_id>/steps/<step>.json    one step's outputs; its presence marks the step done
    jobs/<job_id>/artefacts/<step>/    files a step wrote (moved into place only if it succeeded)

Every file is written atomically (temporary file, then ``os.replace``), so a killed job leaves no
partial output: a step is either complete (its JSON exists) or absent.

Checks first. Before writing anything or opening a channel, a party checks all it can alone
(:func:`check_runnable`): its identity, every step's kind and parameters (parsed once, handed to the
step) and its own dataset, read and checked in full (:mod:`misuan.node.data`) and against what each
step it takes part in needs of it (columns to add, numeric features, both label classes, IDs that
stay distinct under PSI's normalisation). So a broken CSV fails in a second, naming the file and
column, instead of after a peer connects or a protocol has run.

Start and resume. The parties first exchange a hello on the channel: the versions of the protocols
the job's steps speak (a peer on another version is refused, :func:`check_hello`), the hash of the
spec parts they must agree on (:meth:`JobSpec.shared_hash`) and the steps each has completed. With
``resume=True`` a party offers the steps whose output exists and whose step hash (the spec up to
that step plus the party's own dataset path, size and modification time) still matches; without
it, none. All parties
then skip the steps that *every* party completed, up to the first one some party lacks, and rerun
the rest. So resuming a multi-party job needs every party to resume (a party that starts afresh makes
everyone rerun everything), and a party that misses a step drags the others back to it.

Finish. Parties exchange a goodbye after the last step so nobody closes its endpoint while a peer
still sends. On failure the party records the error in ``state.json``, closes its channel (peers
stop with :class:`PeerDisconnectedError` instead of waiting out a timeout) and re-raises.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import shutil
import sys
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from misuan import __version__
from misuan.audit.ledger import Ledger, write_json_atomic
from misuan.crypto.anchor import AnchorSigner
from misuan.errors import JobError, JobSpecError, MisuanError, ProtocolError
from misuan.net import wire
from misuan.net.channel import Channel
from misuan.net.disclosure import DisclosureRecorder
from misuan.net.protocol import ProtocolInfo, check_versions
from misuan.node.anchoring import (
    ANCHOR_STEP,
    anchor_signer,
    check_against_job_states,
    check_held_anchors,
    exchange_anchors,
)
from misuan.node.data import CheckedDataset, DataWarning, check_dataset
from misuan.node.job_files import JobFiles
from misuan.node.spec import JobSpec, StepSpec, canonical_json
from misuan.node.steps import StepContext, StepResult, check_step_roles, parse_step_params, step_kind
from misuan.node.steps.context import where

__all__ = [
    "CheckedParty",
    "JobHello",
    "JobVersions",
    "PartyOutcome",
    "check_hello",
    "check_runnable",
    "job_dir",
    "job_protocols",
    "read_outputs",
    "run_party",
]

ChannelOpener = Callable[[DisclosureRecorder], Channel]
Progress = Callable[[str], None]

VERSIONS_STEP = "job/versions"
HELLO_STEP = "job/hello"
GOODBYE_STEP = "job/goodbye"
CONTROL_MESSAGE_BYTES = 64 << 10  # the job's own messages: versions, hello, goodbye, anchors


@wire.message("job.Versions", max_bytes=CONTROL_MESSAGE_BYTES)
@dataclasses.dataclass
class JobVersions:
    """The first message of every job. Its shape is frozen, so every build from this one on can read it.

    A peer on other protocol versions is refused here, before any message whose shape may have
    changed between versions (the hello included) is decoded. Builds from before this message
    existed send none: they are refused by the timeout on it or by the hello they send instead.
    """

    misuan: str  # misuan's version: shown in a refusal, never compared
    protocols: dict[str, int]  # name -> version of every protocol the job's steps speak


@wire.message("job.Hello", max_bytes=CONTROL_MESSAGE_BYTES)
@dataclasses.dataclass
class JobHello:
    spec_hash: str  # JobSpec.shared_hash(): what every party must agree on
    completed: list[str]  # steps this party offers to skip (resume)
    # party -> fingerprints of the trust anchors the job spec names for it (misuan.crypto.trust): every
    # party's copy of the spec must name the same; a node's own [peer.NAME] anchors are not compared
    trust: dict[str, list[str]] = dataclasses.field(default_factory=dict)


@wire.message("job.Goodbye", max_bytes=CONTROL_MESSAGE_BYTES)
@dataclasses.dataclass
class JobGoodbye:
    completed: list[str]


@dataclasses.dataclass
class PartyOutcome:
    """One party's result of a job run."""

    job_id: str
    party: str
    job_dir: Path
    ledger_path: Path
    outputs: dict[str, dict[str, Any]]  # by step name
    ran: list[str]  # steps run this time
    skipped: list[str]  # steps kept from an earlier run
    traffic: dict[str, Any]


def stderr_progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def job_dir(party_dir: Path, job_id: str) -> Path:
    return Path(party_dir) / "jobs" / job_id


def read_outputs(party_dir: Path, job_id: str) -> dict[str, dict[str, Any]]:
    """The completed steps' outputs of a job, by step name (reads ``steps/*.json``)."""
    out: dict[str, dict[str, Any]] = {}
    steps = job_dir(party_dir, job_id) / "steps"
    for p in sorted(steps.glob("*.json")) if steps.is_dir() else []:
        doc = json.loads(p.read_text(encoding="utf-8"))
        out[doc["step"]] = doc["outputs"]
    return out


@dataclasses.dataclass(frozen=True)
class CheckedParty:
    """What :func:`check_runnable` established for one party; its run reads and parses nothing again."""

    party: str
    dataset: CheckedDataset | None  # the party's own data, read and checked once (None: an aggregator)
    params: Mapping[str, Mapping[type, Any]]  # each step's parsed params, by step name


def check_runnable(spec: JobSpec, party: str, scratch: Path | None = None) -> CheckedParty:
    """Everything that can be checked before talking to anyone: identity, adapters, params, data.

    Every step's params are parsed and checked (its kind's ``check``); the party's dataset is read
    and checked in full, then against each step it takes part in (its kind's ``check_data``).
    Raises a :class:`JobSpecError` or :class:`DataError` naming the field, file and column; it
    writes nothing (but a streamed dataset's column store, in ``scratch`` or the system's temporary
    directory), so a caller runs it before creating any directory or opening any port.
    """
    own = spec.party(party)
    params: dict[str, Mapping[type, Any]] = {}
    for step in spec.steps:
        kind = step_kind(step, spec)
        check_step_roles(kind, step, spec)
        params[step.name] = parse_step_params(kind, step, spec)
        if kind.check is not None:
            kind.check(step, spec, params[step.name])
    spec.check_local(party)
    dataset = None if own.dataset is None else check_dataset(own.dataset, party, scratch)
    for step in spec.steps:
        kind = step_kind(step, spec)
        if party in step.parties and dataset is not None and dataset.store is not None and not kind.streams:
            dataset.store.close()
            raise JobSpecError(
                f"{where(step, spec)} ({step.kind}) reads columns of {party}'s dataset beyond its ID, label and "
                f"features, which a streamed dataset does not keep: set stream = false in {party}'s dataset"
            )
        if party in step.parties and kind.check_data is not None and dataset is not None:
            kind.check_data(step, spec, params[step.name], dataset)
    return CheckedParty(party, dataset, params)


# the runner's own exchange around the steps: hello, held anchors, ledger anchors, goodbye; bump it
# when that exchange changes (v2: the ledger anchors), so an older node is refused by version
JOB_PROTOCOL = ProtocolInfo("job", 3, "the runner's messages around the steps: hello, ledger anchors, goodbye")


def job_protocols(spec: JobSpec) -> dict[str, int]:
    """Name -> version of the runner's exchange and of every protocol the job's steps speak."""
    steps = {p.name: p.version for step in spec.steps for p in step_kind(step, spec).protocols}
    return {JOB_PROTOCOL.name: JOB_PROTOCOL.version, **steps}


def job_versions(spec: JobSpec) -> JobVersions:
    return JobVersions(__version__, job_protocols(spec))


def check_peer_versions(ours: JobVersions, theirs: JobVersions, peer: str) -> None:
    """Refuse a peer on other versions of this job's protocols, naming both (:class:`ProtocolVersionError`).

    misuan's own version may differ between compatible peers: it only appears in the message.
    """
    check_versions(ours.protocols, theirs.protocols, peer, here=ours.misuan, there=theirs.misuan)


def check_hello(ours: JobHello, theirs: JobHello, peer: str, spec: JobSpec) -> set[str]:
    """Refuse a peer that runs another job spec; returns the steps it offers as completed."""
    if theirs.spec_hash != ours.spec_hash:
        raise JobSpecError(
            f"{peer} runs a different version of job {spec.job_id!r} (spec hash {theirs.spec_hash[:12]}..., "
            f"ours {ours.spec_hash[:12]}...): parties, roles and steps must be identical on every party"
        )
    if theirs.trust != ours.trust:
        differ = sorted(p for p in set(ours.trust) | set(theirs.trust) if ours.trust.get(p) != theirs.trust.get(p))
        raise JobSpecError(
            f"{peer} trusts other anchors than this party for {differ} in job {spec.job_id!r}: both must name the "
            "same CA certificates (and pins) for every party; compare `misuan certs fingerprint` of the files"
        )
    names = {s.name for s in spec.steps}
    if len(theirs.completed) > len(names) or not set(theirs.completed) <= names:
        raise ProtocolError(f"{peer} reports completed steps that are not in the job: {theirs.completed[:5]}")
    return set(theirs.completed)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _step_hashes(spec: JobSpec, party: str, fingerprint: str = "") -> dict[str, str]:
    """Per step: hash of the spec up to and including it, plus this party's dataset identity (and, for
    a database, the fingerprint of the rows the checks read: changed rows start the steps anew)."""
    ds = spec.party(party).dataset
    dataset: list[Any] = []  # an aggregator's steps depend on no file of its own
    if ds is not None:
        features = list(ds.features) if ds.features != "all" else "all"
        dataset = [*ds.identity(), ds.id_column, ds.label_column, features] + ([fingerprint] if ds.path is None else [])
    base = {"job_id": spec.job_id, "parties": [[p.name, p.role] for p in spec.parties], "dataset": dataset}
    out = {}
    for i, step in enumerate(spec.steps):
        doc = dict(base, steps=[[s.name, s.kind, list(s.parties), dict(s.params)] for s in spec.steps[: i + 1]])
        out[step.name] = hashlib.sha256(canonical_json(doc).encode("utf-8")).hexdigest()
    return out


class _PartyGroupChannel(Channel):
    """The job's channel as seen by the parties of one step (a ``parties = [...]`` subset).

    Delegates to the job channel through its public send/recv, so sequencing, counting and the
    ledger stay in one place; it only narrows who counts as a peer.
    """

    def __init__(self, base: Channel, parties: Sequence[str]) -> None:
        super().__init__(base.party, parties, base.job_id, base.recorder, base.timeout_s)
        self.base = base
        self.stats = base.stats

    def send(self, to: str, step: str, msg: Any) -> int:
        self._check_peer(to)
        return self.base.send(to, step, msg)

    def recv(self, frm: str, step: str, expect: Any = None, *, timeout_s: float | None = None) -> Any:
        self._check_peer(frm)
        return self.base.recv(frm, step, expect, timeout_s=timeout_s)

    def _transmit(self, to: str, step: str, seq: int, parts: list[bytes | memoryview], size: int) -> None:
        raise RuntimeError("a party-group channel sends through its base channel")  # send() is overridden

    def _mailbox(self) -> Any:
        raise RuntimeError("a party-group channel receives through its base channel")  # recv() is overridden


def run_party(
    spec: JobSpec,
    party: str,
    *,
    party_dir: str | os.PathLike[str],
    open_channel: ChannelOpener,
    resume: bool = False,
    stop: threading.Event | None = None,
    progress: Progress | None = stderr_progress,
    checked: CheckedParty | None = None,
) -> PartyOutcome:
    """Run every step of ``spec`` as ``party``; returns its outputs. See the module docstring.

    Everything local is checked first (:func:`check_runnable`, or its result ``checked`` if the
    caller already ran it): a bad spec or dataset fails before any file is written or any channel
    opened. ``open_channel(recorder)`` opens this party's channel (in-memory or gRPC) with the
    party's ledger as the disclosure recorder. ``stop``, when set, ends the job cleanly after the
    current step (:class:`JobError`; the job can then be resumed).
    """
    if checked is None:
        checked = check_runnable(spec, party, Path(party_dir) / "scratch")
    elif checked.party != party:
        raise ValueError(f"run_party as {party!r} was handed the checks of {checked.party!r}")
    _report_warnings(party, checked.dataset.warnings if checked.dataset is not None else (), progress)
    pdir = Path(party_dir)
    files = JobFiles(job_dir(pdir, spec.job_id))
    files.prepare(spec.job_id, party, resume)
    hashes = _step_hashes(spec, party, checked.dataset.fingerprint if checked.dataset is not None else "")
    offered = files.completed(hashes) if resume else []
    run = _PartyRun(spec, checked, files, hashes, offered, progress or _quiet)
    ledger = _open_checked_ledger(pdir, party)  # before this job's state.json is rewritten: it holds a head
    run.save()

    channel: Channel | None = None
    try:
        channel = open_channel(ledger)
        run.agree(channel, offered)
        check_held_anchors(channel, ledger)  # the peers' anchors of this ledger, before anything is appended
        run.run_steps(channel, stop)
        return run.finish(channel, ledger, anchor_signer(channel, pdir))
    except BaseException as exc:
        run.record_failure(exc, ledger, stop)
        if isinstance(exc, MisuanError) or not isinstance(exc, Exception):
            raise
        raise JobError(f"step {run.current!r} failed for {party}: {type(exc).__name__}: {exc}") from exc
    finally:
        if channel is not None:
            channel.close()
        ledger.close()
        if checked.dataset is not None and checked.dataset.store is not None:
            checked.dataset.store.close()  # a streamed dataset's columns on disk


def _quiet(msg: str) -> None:
    pass


def _open_checked_ledger(party_dir: Path, party: str) -> Ledger:
    """The party's ledger, refused (:class:`LedgerTamperedError`) if its chain is broken or it lacks a
    head that one of the party's jobs recorded in its state file (truncated or rewritten)."""
    ledger = Ledger(party_dir / "ledger.sqlite", party)
    try:
        ledger.verify()
        check_against_job_states(ledger, party_dir)
    except BaseException:
        ledger.close()
        raise
    return ledger


def _report_warnings(party: str, warnings_: Sequence[str], progress: Progress | None) -> None:
    """Show data warnings where this run shows progress, else as Python warnings (notebooks)."""
    for text in warnings_:
        if progress is not None:
            progress(f"[{party}] warning: {text}")
        else:
            warnings.warn(text, DataWarning, stacklevel=3)


class _PartyRun:
    """One party's run of a job: its state file, the step it is in, and the outputs so far."""

    def __init__(
        self, spec: JobSpec, checked: CheckedParty, files: JobFiles, hashes: dict[str, str], offered: list[str],
        say: Progress,
    ) -> None:
        self.spec = spec
        self.party = checked.party
        self.checked = checked
        self.files = files
        self.hashes = hashes
        self.say = say
        self.current = "start"  # what the run is doing: "start", the hello, a step's name, the goodbye
        self.outputs: dict[str, dict[str, Any]] = {}
        self.ran: list[str] = []
        self.skipped: list[str] = []
        self.state: dict[str, Any] = {
            "job_id": spec.job_id,
            "party": self.party,
            "role": spec.party(self.party).role,
            "spec_hash": spec.shared_hash(),
            "status": "starting",
            "started_at": _now(),
            "steps": {
                s.name: {"status": "done" if s.name in offered else "pending", "step_hash": hashes[s.name]}
                for s in spec.steps
            },
            "error": None,
            "ledger_head": None,  # with ledger_length: the ledger's head when the job last stopped
            "ledger_length": None,
            "misuan_version": __version__,
        }

    def save(self) -> None:
        write_json_atomic(self.files.state_path, self.state)

    def agree(self, channel: Channel, offered: list[str]) -> None:
        """Hello with every peer; keep the leading steps all completed, mark the rest to run."""
        self.current = HELLO_STEP
        self.say(f"[{self.party}] job {self.spec.job_id}: connecting to {', '.join(channel.peers)}")
        agreed = _hello(channel, self.spec, offered)
        for step in self.spec.steps:
            if step.name not in agreed:
                break
            self.skipped.append(step.name)
        for name in self.skipped:
            self.outputs[name] = json.loads(self.files.step_path(name).read_text(encoding="utf-8"))["outputs"]
        if self.skipped:
            self.say(f"[{self.party}] resuming after {len(self.skipped)} completed step(s): {', '.join(self.skipped)}")
        self.state["status"] = "running"
        for step in self.spec.steps:
            if step.name not in self.skipped:
                # a step rerun invalidates this party's older outputs of it and of every later step
                self.files.step_path(step.name).unlink(missing_ok=True)
                self.state["steps"][step.name]["status"] = "pending"
        self.save()

    def run_steps(self, channel: Channel, stop: threading.Event | None) -> None:
        total = len(self.spec.steps)
        for i, step in enumerate(self.spec.steps, start=1):
            if step.name in self.skipped:
                continue
            if stop is not None and stop.is_set():
                raise JobError(
                    f"job {self.spec.job_id!r} stopped on request before step {step.name!r}; resume it with --resume"
                )
            self.current = step.name
            self.state["steps"][step.name]["status"] = "running"
            self.save()
            t0 = time.monotonic()
            self.say(f"[{self.party}] step {i}/{total} {step.name} ({step.kind}) ...")
            doc = self._run_step(step, channel)
            self.outputs[step.name] = doc["outputs"]
            self.ran.append(step.name)
            self.state["steps"][step.name]["status"] = "done"
            self.save()
            self.say(f"[{self.party}] step {i}/{total} {step.name} done in {time.monotonic() - t0:.2f} s")

    def finish(self, channel: Channel, ledger: Ledger, signer: AnchorSigner) -> PartyOutcome:
        self.current = ANCHOR_STEP
        anchor = exchange_anchors(channel, ledger, signer)  # the signed head covers every row of the job
        self.current = GOODBYE_STEP
        _goodbye(channel, list(self.outputs))
        traffic = channel.stats.as_dict()
        self.state.update(
            status="completed", finished_at=_now(), ledger_head=anchor.head, ledger_length=anchor.length,
            traffic=traffic,
        )
        self.save()
        self.say(f"[{self.party}] job {self.spec.job_id} completed; results in {self.files.root}")
        return PartyOutcome(
            self.spec.job_id, self.party, self.files.root, ledger.path, self.outputs, self.ran, self.skipped, traffic
        )

    def record_failure(self, exc: BaseException, ledger: Ledger, stop: threading.Event | None) -> None:
        interrupted = isinstance(exc, (KeyboardInterrupt, SystemExit)) or (stop is not None and stop.is_set())
        self.state["status"] = "interrupted" if interrupted else "failed"
        self.state["error"] = f"{type(exc).__name__} in {self.current}: {exc}"
        if self.current in self.state["steps"]:
            self.state["steps"][self.current]["status"] = "failed"
        try:
            self.state["ledger_length"], self.state["ledger_head"] = ledger.length(), ledger.head()
        except MisuanError:
            pass
        self.save()
        self.say(f"[{self.party}] job {self.spec.job_id} {self.state['status']} in {self.current}: {exc}")

    def _run_step(self, step: StepSpec, channel: Channel) -> dict[str, Any]:
        """Run one step and commit its outputs; returns the step document written."""
        staging = self.files.artefacts / f".staging-{step.name}-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        sent0, recv0 = channel.stats.bytes_sent, channel.stats.bytes_received
        t0 = time.monotonic()
        try:
            result = self._call_adapter(step, channel, staging) if self.party in step.parties else StepResult({})
            _check_result(step, result, staging)
            final = self.files.artefacts / step.name
            shutil.rmtree(final, ignore_errors=True)
            if result.artefacts:
                os.replace(staging, final)
            doc = {
                "job_id": self.spec.job_id,
                "party": self.party,
                "step": step.name,
                "kind": step.kind,
                "participated": self.party in step.parties,
                "step_hash": self.hashes[step.name],
                "finished_at": _now(),
                "seconds": round(time.monotonic() - t0, 3),
                "bytes_sent": channel.stats.bytes_sent - sent0,
                "bytes_received": channel.stats.bytes_received - recv0,
                "outputs": result.outputs,
                "artefacts": list(result.artefacts),
            }
            # the step's JSON is its commit marker: written last, atomically
            write_json_atomic(self.files.step_path(step.name), doc)
            return doc
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _call_adapter(self, step: StepSpec, channel: Channel, staging: Path) -> StepResult:
        step_channel = channel if step.parties == channel.parties else _PartyGroupChannel(channel, step.parties)
        ctx = StepContext(
            spec=self.spec,
            step=step,
            party=self.party,
            role=self.state["role"],
            channel=step_channel,
            outputs=dict(self.outputs),
            artefact_dir=staging,
            checked_data=self.checked.dataset,  # every step sees the one dataset check_runnable checked
            parsed=self.checked.params,
            progress=self.say,
            earlier_artefacts={name: self.files.artefacts / name for name in self.outputs},
            # keyed by the step's hash: a resumed run finds only state of the same spec and data
            work_dir=self.files.work / f"{step.name}-{self.hashes[step.name][:16]}",
        )
        result = step_kind(step, self.spec).run(ctx)
        if not isinstance(result, StepResult):
            raise JobError(f"step {step.name!r}: the {step.kind} adapter returned {type(result).__name__}, not StepResult")
        return result


def _check_result(step: StepSpec, result: StepResult, staging: Path) -> None:
    """Refuse outputs that are not JSON and artefacts that are not files under the staging directory."""
    try:
        canonical_json(result.outputs)
    except (TypeError, ValueError) as exc:
        raise JobError(f"step {step.name!r}: outputs are not JSON-able ({exc})") from exc
    for a in result.artefacts:
        if not (staging / a).is_file() or Path(a).is_absolute() or ".." in Path(a).parts:
            raise JobError(f"step {step.name!r}: artefact {a!r} is not a file under its artefact directory")


def _hello(channel: Channel, spec: JobSpec, offered: list[str]) -> set[str]:
    """Versions, then hellos, with every peer; returns the steps every party completed.

    Each peer's :class:`JobVersions` is checked before its hello is decoded, so a peer whose hello
    has another shape is still told apart by version (:func:`check_peer_versions`).
    """
    versions = job_versions(spec)
    mine = JobHello(spec.shared_hash(), offered, dict(channel.trust_view))
    for peer in channel.peers:
        channel.send(peer, VERSIONS_STEP, versions)
        channel.send(peer, HELLO_STEP, mine)
    agreed = set(offered)
    for peer in channel.peers:
        check_peer_versions(versions, channel.recv(peer, VERSIONS_STEP, expect=JobVersions), peer)
        agreed &= check_hello(mine, channel.recv(peer, HELLO_STEP, expect=JobHello), peer, spec)
    return agreed


def _goodbye(channel: Channel, completed: list[str]) -> None:
    for peer in channel.peers:
        channel.send(peer, GOODBYE_STEP, JobGoodbye(completed))
    for peer in channel.peers:
        bye = channel.recv(peer, GOODBYE_STEP, expect=JobGoodbye)
        if bye.completed != completed:
            raise ProtocolError(f"{peer} finished with steps {bye.completed}, we with {completed}")
