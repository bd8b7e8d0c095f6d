"""A long-running node: one institution's misuan process, running the jobs submitted to it.

Design: a spool directory. ``misuan submit job.toml --config node.toml`` writes a submission
(``<data_dir>/inbox/<time>-<job_id>.job.json``: the spec text, the directory its relative paths
resolve against, and the resume flag) atomically; the node polls the inbox, runs one job at a time
with its own identity (``party`` of node.toml), TLS files and listen address, and writes results
under ``<data_dir>/jobs/<job_id>/`` (see :mod:`misuan.node.runner`). Each submission then moves to
``inbox/done/`` or ``inbox/failed/`` (with a ``.error.txt`` holding the one-line reason).

The node serves its gRPC endpoint (one :class:`PartyServer` on ``listen``, started with the node)
and registers each job on it while the job runs.

Consent (:mod:`misuan.node.consent`): a submission runs only once this node's operator has approved
it (or a standing approval covers it, or ``approval = "auto"``). Until then it waits in the inbox,
its preview in ``pending/<job_id>.json``, and the server answers the job's peers "awaiting
approval"; a refused job is filed in ``inbox/failed/`` with the operator's reason, and its peers are
told the reason. Decisions are recorded in the ledger. A job that fails never stops the node: it is
filed with its reason and the node goes on with the next.

Operating: ``node.status.json`` in the data directory says what the node is doing (pid, address,
the job running, those pending, a heartbeat each poll; ``misuan node status`` and ``misuan node
health`` read it), and ``node.log.jsonl`` holds one JSON object per event (time, party, event,
job, message) for log shippers.

Shutdown: the first SIGINT/SIGTERM asks the running job to stop after its current step (its
outputs are complete; resume later with ``misuan submit --resume``); a second one aborts the step
at once (no outputs are written for it: every file is committed atomically). The node then exits.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from misuan import __version__
from misuan.audit.ledger import Ledger, write_json_atomic
from misuan.crypto.pool import use_compute
from misuan.crypto.trust import TrustAnchors, file_expiry_warnings, load_anchors
from misuan.errors import (
    AuthenticationError,
    JobRefusedError,
    JobSpecError,
    MisuanError,
    PeerAwaitingApprovalError,
)
from misuan.net.grpc_channel import peer_job_states
from misuan.net.grpc_server import AWAITING_APPROVAL, REFUSED_BY_OPERATOR, PartyServer
from misuan.node.consent import (
    Decision,
    JobPreview,
    decision_for,
    preview_job,
    record_decision,
    retire_decision,
)
from misuan.node.runner import (
    ChannelOpener,
    PartyOutcome,
    Progress,
    check_runnable,
    run_party,
    stderr_progress,
)
from misuan.node.spec import JobSpec, NodeConfig, load_node_config, load_spec, loads_spec
from misuan.node.transport import grpc_opener, resolve_trust

__all__ = ["STATUS_FILE", "Node", "Submission", "read_submission", "submit"]

STATUS_FILE = "node.status.json"
LOG_FILE = "node.log.jsonl"

SUFFIX = ".job.json"


@dataclasses.dataclass(frozen=True)
class Submission:
    path: Path
    spec_text: str
    base_dir: Path
    resume: bool

    def spec(self) -> JobSpec:
        return loads_spec(self.spec_text, self.base_dir, source=self.path.name)


def submit(spec_path: str | os.PathLike[str], node: NodeConfig, resume: bool = False) -> Path:
    """Validate ``spec_path`` as ``node.party`` and spool it into the node's inbox; returns the entry."""
    path = Path(spec_path)
    spec = load_spec(path)
    check_runnable(spec, node.party)  # fail here, where the user is, not later in the node's log
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    entry = node.inbox / f"{stamp}-{spec.job_id}{SUFFIX}"
    doc = {
        "spec_text": path.read_text(encoding="utf-8"),
        "base_dir": str(path.resolve().parent),
        "resume": resume,
        "submitted_at": stamp,
    }
    return write_json_atomic(entry, doc)  # the node only picks up complete *.job.json files


def read_submission(path: Path) -> Submission:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return Submission(path, str(doc["spec_text"]), Path(doc["base_dir"]), bool(doc.get("resume", False)))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise JobSpecError(f"inbox entry {path.name} is unreadable: {exc}") from exc


class Node:
    """One institution's node. ``open_channel`` is injectable for in-process tests."""

    def __init__(
        self,
        config: NodeConfig,
        *,
        opener: Callable[[JobSpec], ChannelOpener] | None = None,
        progress: Progress | None = stderr_progress,
    ) -> None:
        self.config = config
        self.progress = progress or (lambda msg: None)
        self.stop_requested = threading.Event()
        self._server: PartyServer | None = None
        self._opener = opener
        self._started_at = _now()
        self._running: str | None = None
        self._held: dict[str, str] = {}  # job id -> what its peers are told (awaiting approval, refused, failed)
        self._waiting: dict[str, list[str]] = {}  # job id -> the peers whose approval it waits for (logged once)
        self._recorded: set[str] = set()  # jobs whose decision is in the ledger for this submission
        self._warned: set[str] = set()
        for d in (config.inbox, config.inbox / "done", config.inbox / "failed", config.jobs_dir, self.pending_dir):
            d.mkdir(parents=True, exist_ok=True)

    @property
    def pending_dir(self) -> Path:
        return self.config.data_dir / "pending"

    # --- the loop ------------------------------------------------------------------------------
    def pending(self) -> list[Path]:
        return sorted(p for p in self.config.inbox.glob(f"*{SUFFIX}") if p.is_file())

    def run_once(self) -> PartyOutcome | None:
        """Run the oldest submission its operator approved and its peers can run, if any (None on
        failure, refusal, waiting or if idle).

        Submissions without a decision stay in the inbox with their previews written for the
        operator; an approved job whose peer still awaits its own operator waits its turn without
        holding this node (the node goes on with other submissions and asks again at each poll).
        """
        for entry in self.pending():
            try:
                sub = read_submission(entry)
                spec = sub.spec()
                anchors = self._anchors(spec)
                preview = preview_job(spec, self.config.party, anchors)
            except MisuanError as exc:
                self._fail(entry, None, None, exc)
                continue
            decision = self._decision(spec, preview)
            if decision is None:
                self._await(entry, spec, anchors, preview)
                continue
            if decision.decision == "refused":
                self._refused(entry, spec, anchors, decision)
                continue
            if not self._peers_ready(entry, spec, anchors):
                continue
            return self._run(entry, sub, spec, anchors, decision)
        self._status()
        return None

    def _run(
        self, entry: Path, sub: Submission, spec: JobSpec, anchors: dict[str, TrustAnchors] | None, decision: Decision
    ) -> PartyOutcome | None:
        if spec.job_id not in self._recorded:
            self._record(spec, decision)
            self._recorded.add(spec.job_id)
        self._unhold(spec.job_id)
        (self.pending_dir / f"{spec.job_id}.json").unlink(missing_ok=True)
        self._running = spec.job_id
        self._log("job_started", f"running job {spec.job_id} from {entry.name} ({decision.decision} by {decision.operator})", spec.job_id)
        self._status()
        try:
            outcome = run_party(
                spec,
                self.config.party,
                party_dir=self.config.data_dir,
                open_channel=self._channel_opener(spec, anchors),
                resume=sub.resume,
                stop=self.stop_requested,
                progress=self.progress,
            )
        except PeerAwaitingApprovalError as exc:  # a peer's operator withdrew to "pending" meanwhile
            self._log("waiting", f"{exc}; asking again at the next poll", spec.job_id)
            return None
        except MisuanError as exc:
            self._fail(entry, spec, anchors, exc)
            return None
        except KeyboardInterrupt:
            self._file(entry, "failed", "aborted by a second shutdown signal; resubmit with --resume")
            raise
        finally:
            self._running = None
        self._file(entry, "done", None)
        retire_decision(self.config, spec.job_id)
        self._recorded.discard(spec.job_id)
        self._log("job_done", f"job {spec.job_id} done", spec.job_id)
        self._status()
        return outcome

    def serve(self, poll_s: float = 1.0) -> int:
        """Run submissions until a shutdown signal; returns the process exit status."""
        self._install_signals()
        self._log("node_started", f"listening on {self._ensure_server().address}; watching {self.config.inbox}")
        for warning in self._expiry_warnings():
            self._log("certificate_expiry", warning, level="warning")
        try:
            while not self.stop_requested.is_set():
                if self.run_once() is None:
                    self._idle(poll_s)
        except KeyboardInterrupt:
            self._log("node_aborted", "aborted")
            return 130
        finally:
            if self._server is not None:
                self._server.stop()
        self._log("node_stopped", "stopped")
        self._status(stopped=True)
        return 0

    def _idle(self, poll_s: float) -> None:
        """Sleep until the next poll or a stop request.

        Not ``stop_requested.wait``: the signal handler sets that event from the main thread, and
        ``Event.set`` takes the lock that ``Event.wait`` holds between its checks; a signal landing
        there deadlocked the node (seen in CI: SIGTERM ignored after a job). The main thread therefore
        never waits on the event; it polls ``is_set``, which takes no lock.
        """
        deadline = time.monotonic() + poll_s
        while not self.stop_requested.is_set() and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 0.1))

    # --- consent -------------------------------------------------------------------------------
    def _anchors(self, spec: JobSpec) -> dict[str, TrustAnchors] | None:
        return None if self._opener is not None else resolve_trust(spec, self.config.party, self.config.tls, self.config)

    def _decision(self, spec: JobSpec, preview: JobPreview) -> Decision | None:
        try:
            return decision_for(self.config, spec, preview)
        except AuthenticationError as exc:  # e.g. the node's certificate was rotated since: ask again
            if spec.job_id not in self._warned:
                self._warned.add(spec.job_id)
                self._log("decision_unverified", f"{exc}; job {spec.job_id} waits for a new decision", spec.job_id, "warning")
            return None

    def _await(self, entry: Path, spec: JobSpec, anchors: dict[str, TrustAnchors] | None, preview: JobPreview) -> None:
        """Write (or rewrite, when what it would disclose changed) the job's preview; tell its peers it waits."""
        path = self.pending_dir / f"{spec.job_id}.json"
        try:
            shown = json.loads(path.read_text(encoding="utf-8"))["preview"]["consent_hash"] if path.is_file() else None
        except (OSError, ValueError, KeyError, TypeError):
            shown = None
        if shown != preview.consent_hash:
            write_json_atomic(path, {"entry": entry.name, "submitted_at": _now(), "preview": preview.as_dict()})
            self._log("job_pending", f"job {spec.job_id} awaits this node's approval: misuan node show {spec.job_id}", spec.job_id)
        self._hold(spec, anchors, AWAITING_APPROVAL)

    def _refused(self, entry: Path, spec: JobSpec, anchors: dict[str, TrustAnchors] | None, decision: Decision) -> None:
        self._record(spec, decision)
        self._hold(spec, anchors, f"{REFUSED_BY_OPERATOR}: {decision.reason}")
        (self.pending_dir / f"{spec.job_id}.json").unlink(missing_ok=True)
        retire_decision(self.config, spec.job_id)  # a resubmission is asked about again
        exc = JobRefusedError(f"refused by {self.config.party}'s operator: {decision.reason}")
        self._file(entry, "failed", f"{type(exc).__name__}: {exc}")
        self._log("job_refused", f"{entry.name}: {exc}", spec.job_id, "error")

    def _peers_ready(self, entry: Path, spec: JobSpec, anchors: dict[str, TrustAnchors] | None) -> bool:
        """False while a peer holds the job for its operator (logged once); a peer's refusal files the job."""
        if self._opener is not None:
            return True
        book = {p.name: p.address for p in spec.parties}
        states = peer_job_states(self.config.party, book, spec.job_id, self.config.tls, anchors)
        refused = {p: s for p, s in states.items() if s.startswith(f"held:{REFUSED_BY_OPERATOR}")}
        if refused:
            self._fail(entry, spec, anchors, JobRefusedError("; ".join(f"{p}: {s[5:]}" for p, s in refused.items())))
            return False
        waiting = sorted(p for p, s in states.items() if s == f"held:{AWAITING_APPROVAL}")
        if waiting:
            self._unhold(spec.job_id)
            if self._waiting.get(spec.job_id) != waiting:
                self._waiting[spec.job_id] = waiting
                self._log("waiting", f"waiting for {', '.join(waiting)}'s approval of job {spec.job_id!r}", spec.job_id)
            return False
        self._waiting.pop(spec.job_id, None)
        return True

    def _hold(self, spec: JobSpec, anchors: dict[str, TrustAnchors] | None, why: str) -> None:
        """Tell the job's peers why it does not run here (only on a real server)."""
        if self._opener is not None or self._held.get(spec.job_id) == why:
            return
        self._held[spec.job_id] = why
        self._ensure_server().register(spec.job_id, spec.party_names, None, 0, anchors=anchors, held=why)

    def _unhold(self, job_id: str) -> None:
        if self._held.pop(job_id, None) is not None and self._server is not None:
            self._server.unregister(job_id)

    def _record(self, spec: JobSpec, decision: Decision) -> None:
        with Ledger(self.config.ledger_path, self.config.party) as ledger:
            record_decision(ledger, self.config.party, decision)

    # --- operating -----------------------------------------------------------------------------
    def _status(self, stopped: bool = False) -> None:
        doc = {
            "party": self.config.party,
            "pid": os.getpid(),
            "listen": self._server.address if self._server is not None else self.config.listen,
            "started_at": self._started_at,
            "heartbeat_at": _now(),
            "state": "stopped" if stopped else ("running" if self._running else "idle"),
            "running_job": self._running,
            "awaiting_approval": sorted(j for j, why in self._held.items() if why == AWAITING_APPROVAL),
            "misuan_version": __version__,
        }
        write_json_atomic(self.config.data_dir / STATUS_FILE, doc)

    def _log(self, event: str, message: str, job_id: str | None = None, level: str = "info") -> None:
        self.progress(f"[node {self.config.party}] {message}")
        line = {"time": _now(), "level": level, "party": self.config.party, "event": event, "job_id": job_id, "message": message}
        with open(self.config.data_dir / LOG_FILE, "a", encoding="utf-8") as log:
            log.write(json.dumps(line, ensure_ascii=False) + "\n")

    def _expiry_warnings(self) -> list[str]:
        return file_expiry_warnings(self.config.certificate_files())

    # --- helpers -------------------------------------------------------------------------------
    def _ensure_server(self) -> PartyServer:
        if self._server is None:
            self._server = PartyServer(self.config.party, self.config.tls, self.config.listen, extra_roots=self._peer_roots())
        return self._server

    def _peer_roots(self) -> bytes:
        return b"".join(load_anchors(name, t.ca, t.pins, t.where).pem for name, t in sorted(self.config.peers.items()))

    def _channel_opener(self, spec: JobSpec, anchors: dict[str, TrustAnchors] | None) -> ChannelOpener:
        if self._opener is not None:
            return self._opener(spec)
        return grpc_opener(
            spec, self.config.party, self.config.tls, server=self._ensure_server(), anchors=anchors,
            on_wait=lambda msg: self._log("waiting", msg, spec.job_id), wait_for_approval=False,
        )

    def _fail(self, entry: Path, spec: JobSpec | None, anchors: dict[str, TrustAnchors] | None, exc: MisuanError) -> None:
        """File the submission with its reason; its peers are told it will not run here (not why: that is local)."""
        self._file(entry, "failed", f"{type(exc).__name__}: {exc}")
        job_id = spec.job_id if spec is not None else None
        self._log("job_failed", f"{entry.name} failed: {exc}", job_id, level="error")
        if spec is not None:
            (self.pending_dir / f"{spec.job_id}.json").unlink(missing_ok=True)
            self._held.pop(spec.job_id, None)
            self._hold(spec, anchors, f"not run here ({type(exc).__name__}; see that node's log)")

    def _file(self, entry: Path, outcome: str, error: str | None) -> None:
        target = self.config.inbox / outcome / entry.name
        if error is not None:
            (self.config.inbox / outcome / f"{entry.name}.error.txt").write_text(error + "\n", encoding="utf-8")
        os.replace(entry, target)

    def _install_signals(self) -> None:
        def on_signal(signum: int, frame: FrameType | None) -> None:
            if self.stop_requested.is_set():
                # second signal: abort the step now; the runner marks the job interrupted
                raise KeyboardInterrupt
            self.stop_requested.set()
            print(
                f"[node {self.config.party}] {signal.Signals(signum).name}: finishing the current step, "
                "then stopping (send again to abort it)",
                file=sys.stderr,
                flush=True,
            )

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def start(config_path: str | os.PathLike[str], poll_s: float = 1.0) -> int:
    """``misuan node start --config node.toml``."""
    config = load_node_config(config_path)
    use_compute(config.compute)  # this party's worker pools: here, or on its own Ray cluster
    node = Node(config)
    return node.serve(poll_s)

