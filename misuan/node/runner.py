"""Run a job spec's steps in order, as one party.

Layout under a party's directory (``<workdir>/<party>`` for ``misuan run``, the node's ``data_dir``
for a node)::

    ledger.sqlite                      the party's disclosure ledger (all its jobs)
    jobs/<job_id>/state.json           job status, per-step status and hashes, ledger head, error
    jobs/<job_id>/steps/<step>.json    one step's outputs; its presence marks the step done
    jobs/<job_id>/artefacts/<step>/    files a step wrote (moved into place only if it succeeded)

Every file is written atomically (temporary file, then ``os.replace``), so a killed job leaves no
partial output: a step is either complete (its JSON exists) or absent.

Start and resume. The parties first exchange a hello on the channel: the hash of the spec parts they
must agree on (:meth:`JobSpec.shared_hash`) and the steps each has completed. With ``resume=True`` a
party offers the steps whose output exists and whose step hash (the spec up to that step plus the
party's own dataset path, size and modification time) still matches; without it, none. All parties
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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from misuan import __version__
from misuan.audit.ledger import Ledger, write_json_atomic
from misuan.errors import ConfigError, JobError, JobSpecError, MisuanError, ProtocolError
from misuan.net import wire
from misuan.net.channel import Channel
from misuan.net.disclosure import DisclosureRecorder
from misuan.node.data import load_dataset
from misuan.node.spec import JobSpec, StepSpec, canonical_json
from misuan.node.steps import StepContext, StepResult, parse_step_params, step_kind

__all__ = ["JobHello", "PartyOutcome", "check_runnable", "job_dir", "read_outputs", "run_party"]

ChannelOpener = Callable[[DisclosureRecorder], Channel]
Progress = Callable[[str], None]

HELLO_STEP = "job/hello"
GOODBYE_STEP = "job/goodbye"


@wire.message("job.Hello")
@dataclasses.dataclass
class JobHello:
    spec_hash: str
    completed: list[str]
    version: str


@wire.message("job.Goodbye")
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


def check_runnable(spec: JobSpec, party: str) -> None:
    """Everything that can be checked before talking to anyone: identity, adapters, params, files."""
    spec.party(party)
    for step in spec.steps:
        kind = step_kind(step, spec)
        parse_step_params(kind, step, spec)
        if kind.check is not None:
            kind.check(step, spec)
    spec.check_local(party)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _step_hashes(spec: JobSpec, party: str) -> dict[str, str]:
    """Per step: hash of the spec up to and including it, plus this party's dataset identity."""
    ds = spec.party(party).dataset
    try:
        st = ds.path.stat()
        file_id: list[Any] = [st.st_size, st.st_mtime_ns]
    except OSError:
        file_id = []
    base = {
        "job_id": spec.job_id,
        "parties": [[p.name, p.role] for p in spec.parties],
        "dataset": [str(ds.path), ds.id_column, ds.label_column, list(ds.features) if ds.features != "all" else "all", file_id],
    }
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

    def recv(self, frm: str, step: str, expect: Any = None) -> Any:
        self._check_peer(frm)
        return self.base.recv(frm, step, expect)

    def _transmit(self, to: str, step: str, seq: int, parts: list[bytes | memoryview], size: int) -> None:
        raise RuntimeError("a party-group channel sends through its base channel")  # send() is overridden

    def _mailbox(self) -> Any:
        raise RuntimeError("a party-group channel receives through its base channel")  # recv() is overridden


class _JobFiles:
    """The job directory of one party, with atomic writes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state_path = root / "state.json"
        self.steps = root / "steps"
        self.artefacts = root / "artefacts"

    def step_path(self, name: str) -> Path:
        return self.steps / f"{name}.json"

    def completed(self, hashes: dict[str, str]) -> list[str]:
        done = []
        for name, want in hashes.items():
            try:
                doc = json.loads(self.step_path(name).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if doc.get("step_hash") != want:
                continue
            if all((self.artefacts / name / a).is_file() for a in doc.get("artefacts", [])):
                done.append(name)
        return done

    def clean_staging(self) -> None:
        """Remove staging directories a killed run left behind."""
        if self.artefacts.is_dir():
            for p in self.artefacts.glob(".staging-*"):
                shutil.rmtree(p, ignore_errors=True)


def run_party(
    spec: JobSpec,
    party: str,
    *,
    party_dir: str | os.PathLike[str],
    open_channel: ChannelOpener,
    resume: bool = False,
    stop: threading.Event | None = None,
    progress: Progress | None = stderr_progress,
) -> PartyOutcome:
    """Run every step of ``spec`` as ``party``; returns its outputs. See the module docstring.

    ``open_channel(recorder)`` opens this party's channel (in-memory or gRPC) with the party's ledger
    as the disclosure recorder. ``stop``, when set, ends the job cleanly after the current step
    (:class:`JobError`; the job can then be resumed).
    """
    say = progress or (lambda msg: None)
    me = spec.party(party)
    check_runnable(spec, party)
    pdir = Path(party_dir)
    files = _JobFiles(job_dir(pdir, spec.job_id))
    if not resume and files.steps.is_dir() and any(files.steps.glob("*.json")):
        raise ConfigError(
            f"job {spec.job_id!r} already has results for {party} in {files.root}; "
            "pass --resume to continue it, or remove that directory to start again"
        )
    files.steps.mkdir(parents=True, exist_ok=True)
    files.clean_staging()
    hashes = _step_hashes(spec, party)
    offered = files.completed(hashes) if resume else []
    state: dict[str, Any] = {
        "job_id": spec.job_id,
        "party": party,
        "role": me.role,
        "spec_hash": spec.shared_hash(),
        "status": "starting",
        "started_at": _now(),
        "steps": {s.name: {"status": "done" if s.name in offered else "pending", "step_hash": hashes[s.name]} for s in spec.steps},
        "error": None,
        "ledger_head": None,
        "misuan_version": __version__,
    }
    write_json_atomic(files.state_path, state)

    ledger = Ledger(pdir / "ledger.sqlite")
    channel: Channel | None = None
    cache: dict[str, pd.DataFrame] = {}

    def load_data() -> pd.DataFrame:
        if "df" not in cache:  # once per run: every step sees the same checked frame
            cache["df"] = load_dataset(me.dataset, party)
        return cache["df"]

    outputs: dict[str, dict[str, Any]] = {}
    ran: list[str] = []
    current = "start"
    try:
        ledger.verify()  # refuse to append to a tampered ledger
        channel = open_channel(ledger)
        current = HELLO_STEP
        say(f"[{party}] job {spec.job_id}: connecting to {', '.join(channel.peers)}")
        agreed = _hello(channel, spec, offered)
        skip = []
        for step in spec.steps:
            if step.name not in agreed:
                break
            skip.append(step.name)
        for name in skip:
            outputs[name] = json.loads(files.step_path(name).read_text(encoding="utf-8"))["outputs"]
        if skip:
            say(f"[{party}] resuming after {len(skip)} completed step(s): {', '.join(skip)}")
        state["status"] = "running"
        for step in spec.steps:
            if step.name not in skip:
                # a step rerun invalidates this party's older outputs of it and of every later step
                files.step_path(step.name).unlink(missing_ok=True)
                state["steps"][step.name]["status"] = "pending"
        write_json_atomic(files.state_path, state)

        for i, step in enumerate(spec.steps, start=1):
            if step.name in skip:
                continue
            if stop is not None and stop.is_set():
                raise JobError(f"job {spec.job_id!r} stopped on request before step {step.name!r}; resume it with --resume")
            current = step.name
            state["steps"][step.name]["status"] = "running"
            write_json_atomic(files.state_path, state)
            t0 = time.monotonic()
            say(f"[{party}] step {i}/{len(spec.steps)} {step.name} ({step.kind}) ...")
            doc = _run_step(spec, step, party, me.role, channel, outputs, files, hashes[step.name], load_data, say)
            outputs[step.name] = doc["outputs"]
            ran.append(step.name)
            state["steps"][step.name]["status"] = "done"
            write_json_atomic(files.state_path, state)
            say(f"[{party}] step {i}/{len(spec.steps)} {step.name} done in {time.monotonic() - t0:.2f} s")

        current = GOODBYE_STEP
        _goodbye(channel, list(outputs))
        state["status"] = "completed"
        state["finished_at"] = _now()
        state["ledger_head"] = ledger.head()
        state["traffic"] = channel.stats.as_dict()
        write_json_atomic(files.state_path, state)
        say(f"[{party}] job {spec.job_id} completed; results in {files.root}")
        return PartyOutcome(
            spec.job_id, party, files.root, ledger.path, outputs, ran, skip, channel.stats.as_dict()
        )
    except BaseException as exc:
        interrupted = isinstance(exc, (KeyboardInterrupt, SystemExit)) or (stop is not None and stop.is_set())
        state["status"] = "interrupted" if interrupted else "failed"
        state["error"] = f"{type(exc).__name__} in {current}: {exc}"
        if current in state["steps"]:
            state["steps"][current]["status"] = "failed"
        try:
            state["ledger_head"] = ledger.head()
        except MisuanError:
            pass
        write_json_atomic(files.state_path, state)
        say(f"[{party}] job {spec.job_id} {state['status']} in {current}: {exc}")
        if isinstance(exc, MisuanError) or not isinstance(exc, Exception):
            raise
        raise JobError(f"step {current!r} failed for {party}: {type(exc).__name__}: {exc}") from exc
    finally:
        if channel is not None:
            channel.close()
        ledger.close()


def _hello(channel: Channel, spec: JobSpec, offered: list[str]) -> set[str]:
    """Exchange spec hash and completed steps with every peer; returns the steps all completed."""
    mine = spec.shared_hash()
    for peer in channel.peers:
        channel.send(peer, HELLO_STEP, JobHello(mine, offered, __version__))
    agreed = set(offered)
    names = {s.name for s in spec.steps}
    for peer in channel.peers:
        hello = channel.recv(peer, HELLO_STEP, expect=JobHello)
        if hello.spec_hash != mine:
            raise JobSpecError(
                f"{peer} runs a different version of job {spec.job_id!r} (spec hash {hello.spec_hash[:12]}..., "
                f"ours {mine[:12]}...): parties, roles and steps must be identical on every party"
            )
        if len(hello.completed) > len(names) or not set(hello.completed) <= names:
            raise ProtocolError(f"{peer} reports completed steps that are not in the job: {hello.completed[:5]}")
        agreed &= set(hello.completed)
    return agreed


def _goodbye(channel: Channel, completed: list[str]) -> None:
    for peer in channel.peers:
        channel.send(peer, GOODBYE_STEP, JobGoodbye(completed))
    for peer in channel.peers:
        bye = channel.recv(peer, GOODBYE_STEP, expect=JobGoodbye)
        if bye.completed != completed:
            raise ProtocolError(f"{peer} finished with steps {bye.completed}, we with {completed}")


def _run_step(
    spec: JobSpec,
    step: StepSpec,
    party: str,
    role: str,
    channel: Channel,
    outputs: dict[str, dict[str, Any]],
    files: _JobFiles,
    step_hash: str,
    load_data: Callable[[], pd.DataFrame],
    say: Progress,
) -> dict[str, Any]:
    """Run one step and commit its outputs; returns the step document written."""
    participates = party in step.parties
    staging = files.artefacts / f".staging-{step.name}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    sent0, recv0 = channel.stats.bytes_sent, channel.stats.bytes_received
    t0 = time.monotonic()
    try:
        if participates:
            step_channel = channel if step.parties == channel.parties else _PartyGroupChannel(channel, step.parties)
            kind = step_kind(step, spec)
            ctx = StepContext(
                spec=spec,
                step=step,
                party=party,
                role=role,
                channel=step_channel,
                outputs=dict(outputs),
                artefact_dir=staging,
                load_data=load_data,
                progress=say,
                earlier_artefacts={name: files.artefacts / name for name in outputs},
                parsed=parse_step_params(kind, step, spec),
            )
            result = kind.run(ctx)
            if not isinstance(result, StepResult):
                raise JobError(f"step {step.name!r}: the {step.kind} adapter returned {type(result).__name__}, not StepResult")
        else:
            result = StepResult({})
        try:
            canonical_json(result.outputs)
        except (TypeError, ValueError) as exc:
            raise JobError(f"step {step.name!r}: outputs are not JSON-able ({exc})") from exc
        for a in result.artefacts:
            if not (staging / a).is_file() or Path(a).is_absolute() or ".." in Path(a).parts:
                raise JobError(f"step {step.name!r}: artefact {a!r} is not a file under its artefact directory")
        final = files.artefacts / step.name
        shutil.rmtree(final, ignore_errors=True)
        if result.artefacts:
            os.replace(staging, final)
        doc = {
            "job_id": spec.job_id,
            "party": party,
            "step": step.name,
            "kind": step.kind,
            "participated": participates,
            "step_hash": step_hash,
            "finished_at": _now(),
            "seconds": round(time.monotonic() - t0, 3),
            "bytes_sent": channel.stats.bytes_sent - sent0,
            "bytes_received": channel.stats.bytes_received - recv0,
            "outputs": result.outputs,
            "artefacts": list(result.artefacts),
        }
        # the step's JSON is its commit marker: written last, atomically
        write_json_atomic(files.step_path(step.name), doc)
        return doc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
