"""A long-running node: one institution's misuan process, running the jobs submitted to it.

Design: a spool directory. ``misuan submit job.toml --config node.toml`` writes a submission
(``<data_dir>/inbox/<time>-<job_id>.job.json``: the spec text, the directory its relative paths
resolve against, and the resume flag) atomically; the node polls the inbox, runs one job at a time
with its own identity (``party`` of node.toml), TLS files and listen address, and writes results
under ``<data_dir>/jobs/<job_id>/`` (see :mod:`misuan.node.runner`). Each submission then moves to
``inbox/done/`` or ``inbox/failed/`` (with a ``.error.txt`` holding the one-line reason).

The node serves its gRPC endpoint (one :class:`PartyServer` on ``listen``, started with the node)
and registers each job on it while the job runs.

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
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from misuan.audit.ledger import write_json_atomic
from misuan.errors import JobSpecError, MisuanError
from misuan.net.grpc_server import PartyServer
from misuan.node.runner import (
    ChannelOpener,
    PartyOutcome,
    Progress,
    check_runnable,
    run_party,
    stderr_progress,
)
from misuan.node.spec import JobSpec, NodeConfig, load_node_config, load_spec, loads_spec
from misuan.node.transport import grpc_opener

__all__ = ["Node", "Submission", "read_submission", "submit"]

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
        for d in (config.inbox, config.inbox / "done", config.inbox / "failed", config.jobs_dir):
            d.mkdir(parents=True, exist_ok=True)

    # --- the loop ------------------------------------------------------------------------------
    def pending(self) -> list[Path]:
        return sorted(p for p in self.config.inbox.glob(f"*{SUFFIX}") if p.is_file())

    def run_once(self) -> PartyOutcome | None:
        """Run the oldest pending submission, if any; returns its outcome (None on failure or if idle)."""
        queue = self.pending()
        if not queue:
            return None
        entry = queue[0]
        try:
            sub = read_submission(entry)
            spec = sub.spec()
            self.progress(f"[node {self.config.party}] running job {spec.job_id} from {entry.name}")
            outcome = run_party(
                spec,
                self.config.party,
                party_dir=self.config.data_dir,
                open_channel=self._channel_opener(spec),
                resume=sub.resume,
                stop=self.stop_requested,
                progress=self.progress,
            )
        except MisuanError as exc:
            self._file(entry, "failed", f"{type(exc).__name__}: {exc}")
            self.progress(f"[node {self.config.party}] {entry.name} failed: {exc}")
            return None
        except KeyboardInterrupt:
            self._file(entry, "failed", "aborted by a second shutdown signal; resubmit with --resume")
            raise
        self._file(entry, "done", None)
        return outcome

    def serve(self, poll_s: float = 1.0) -> int:
        """Run submissions until a shutdown signal; returns the process exit status."""
        self._install_signals()
        self.progress(
            f"[node {self.config.party}] listening on {self._ensure_server().address}; "
            f"watching {self.config.inbox}"
        )
        try:
            while not self.stop_requested.is_set():
                if self.run_once() is None and not self.pending():
                    self.stop_requested.wait(poll_s)
        except KeyboardInterrupt:
            self.progress(f"[node {self.config.party}] aborted")
            return 130
        finally:
            if self._server is not None:
                self._server.stop()
        self.progress(f"[node {self.config.party}] stopped")
        return 0

    # --- helpers -------------------------------------------------------------------------------
    def _ensure_server(self) -> PartyServer:
        if self._server is None:
            self._server = PartyServer(self.config.party, self.config.tls, self.config.listen)
        return self._server

    def _channel_opener(self, spec: JobSpec) -> ChannelOpener:
        if self._opener is not None:
            return self._opener(spec)
        return grpc_opener(spec, self.config.party, self.config.tls, server=self._ensure_server())

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


def start(config_path: str | os.PathLike[str], poll_s: float = 1.0) -> int:
    """``misuan node start --config node.toml``."""
    node = Node(load_node_config(config_path))
    return node.serve(poll_s)

