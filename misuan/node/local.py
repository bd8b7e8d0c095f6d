"""Every party of a job on this machine: the job-level use of the local-run harness :mod:`misuan.net.local`.

The same argument as the harness chooses how the parties run:

- ``transport="threads"``: each party's :func:`~misuan.node.runner.run_party` in a thread of this
  process over in-memory channels, through :func:`misuan.net.local.run_local_openers`
  (:func:`misuan.api.simulate`, ``misuan simulate --in-process``);
- ``transport="processes"``: each party as the ``misuan run`` a node operator starts, a child OS
  process talking gRPC with mutual TLS on 127.0.0.1 (``misuan simulate``, ``misuan demo``). The
  children print their own progress and errors; a failed child's outcome holds a
  :class:`PartyExitError` with its exit code, and its outputs are on disk
  (:func:`~misuan.node.runner.read_outputs`).

Either way each party works in ``<workdir>/<party>`` (ledger, job state, step outputs), exactly as
``misuan run`` does on a real node.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import IO

from misuan.errors import MisuanError, NetworkError
from misuan.net.local import (
    ChannelOpener,
    LocalOutcome,
    Transport,
    free_port,
    make_test_pki,
    run_local_openers,
)
from misuan.node.runner import CheckedParty, PartyOutcome, Progress, run_party, stderr_progress
from misuan.node.spec import JobSpec

__all__ = ["PartyExitError", "ProcessOptions", "run_job_local"]


class PartyExitError(MisuanError):
    """A party's ``misuan run`` process ended with a non-zero exit code (it printed its own error)."""

    def __init__(self, party: str, exit_code: int) -> None:
        super().__init__(f"{party}'s `misuan run` exited with code {exit_code}")
        self.party = party
        self.exit_code = exit_code


@dataclasses.dataclass(frozen=True)
class ProcessOptions:
    """How the ``misuan run`` children start (``transport="processes"`` only)."""

    spec_path: Path  # the job spec file the children read
    tls_dir: Path | None = None  # ca.pem, <party>.pem, <party>.key; default: a throw-away CA
    ports: Mapping[str, int] | None = None  # each party's loopback port; default: free ones
    log_dir: Path | None = None  # <party>.log gets its standard output (and stderr unless shown)
    shown: Collection[str] | None = None  # parties whose progress and errors go to this terminal (default: all)
    debug: bool = False  # children print tracebacks


def run_job_local(
    job: JobSpec,
    *,
    workdir: Path,
    transport: Transport = "threads",
    resume: bool = False,
    progress: Progress | None = stderr_progress,
    timeout_s: float | None = None,
    checked: Mapping[str, CheckedParty] | None = None,
    processes: ProcessOptions | None = None,
    raise_errors: bool = True,
) -> dict[str, LocalOutcome]:
    """Run every party of ``job``; each outcome's ``result`` is its :class:`PartyOutcome` (threads).

    Threads only: ``progress`` reports each party's steps, ``timeout_s`` bounds each ``recv``
    (default: the job's), ``checked`` hands each party its :func:`check_runnable` result. Processes
    only: ``processes`` says how the children start. With ``raise_errors`` the first real failure
    is raised (a peer's network error only if nothing else failed); otherwise it is in the outcomes.
    """
    if transport == "threads":
        fns = {
            p: functools.partial(_run_party_thread, job, p, workdir / p, resume, progress, (checked or {}).get(p))
            for p in job.party_names
        }
        wait_s = timeout_s if timeout_s is not None else job.timeout_s
        return run_local_openers(fns, job_id=job.job_id, timeout_s=wait_s, raise_errors=raise_errors)
    if transport != "processes":
        raise ValueError(f"transport must be 'threads' or 'processes', not {transport!r}")
    if processes is None:
        raise ValueError("transport='processes' starts `misuan run` children: pass processes=ProcessOptions(spec_path)")
    outcomes = _run_children(job, workdir, resume, processes)
    failed = [o.error for o in outcomes.values() if isinstance(o.error, PartyExitError)]
    if raise_errors and failed:
        # a peer's network error is usually a consequence: raise the cause's
        raise next((e for e in failed if e.exit_code != NetworkError.exit_code), failed[0])
    return outcomes


def _run_party_thread(
    job: JobSpec, party: str, party_dir: Path, resume: bool, progress: Progress | None,
    checked: CheckedParty | None, open_channel: ChannelOpener,
) -> PartyOutcome:
    return run_party(
        job, party, party_dir=party_dir, open_channel=open_channel, resume=resume, progress=progress, checked=checked
    )


def _run_children(job: JobSpec, workdir: Path, resume: bool, opts: ProcessOptions) -> dict[str, LocalOutcome]:
    parties = job.party_names
    ports = dict(opts.ports) if opts.ports is not None else {p: free_port() for p in parties}
    book = [a for p, port in ports.items() for a in ("--address", f"{p}=127.0.0.1:{port}")]
    with tempfile.TemporaryDirectory(prefix="misuan-certs-") as tmp, contextlib.ExitStack() as files:
        tls_dir = opts.tls_dir
        if tls_dir is None:
            make_test_pki(tmp, parties, name="misuan simulate CA")
            tls_dir = Path(tmp)
        procs: dict[str, subprocess.Popen[bytes]] = {}
        for party in parties:
            cmd = [sys.executable, "-m", "misuan.cli", *(["--debug"] if opts.debug else []), "run", str(opts.spec_path),
                   "--as", party, "--workdir", str(workdir), "--tls-dir", str(tls_dir),
                   "--listen", f"127.0.0.1:{ports[party]}", *book, *(["--resume"] if resume else [])]
            log: IO[bytes] | int = subprocess.DEVNULL
            if opts.log_dir is not None:
                opts.log_dir.mkdir(parents=True, exist_ok=True)
                log = files.enter_context(open(opts.log_dir / f"{party}.log", "wb"))
            stderr = None if opts.shown is None or party in opts.shown else log
            procs[party] = subprocess.Popen(cmd, stdout=log, stderr=stderr)
        start = time.monotonic()
        finished = _wait_all(procs)
    return {
        p: LocalOutcome(p, error=PartyExitError(p, code) if code else None, seconds=at - start)
        for p, (code, at) in finished.items()
    }


def _wait_all(procs: dict[str, subprocess.Popen[bytes]], grace_s: float = 10.0) -> dict[str, tuple[int, float]]:
    """Wait for every party: its exit code and when it ended. Once one fails, give the others
    ``grace_s`` to stop, then interrupt them."""
    first_failure: float | None = None
    ended: dict[str, float] = {}
    try:
        while True:
            for name, p in procs.items():
                if name not in ended and p.poll() is not None:
                    ended[name] = time.monotonic()
            if len(ended) == len(procs):
                break
            if first_failure is None and any(p.returncode not in (None, 0) for p in procs.values()):
                first_failure = time.monotonic()
            if first_failure is not None and time.monotonic() - first_failure > grace_s:
                _interrupt(procs.values())
                first_failure = float("inf")
            time.sleep(0.05)
    except KeyboardInterrupt:
        _interrupt(procs.values())
        for p in procs.values():
            p.wait()
        raise
    return {name: (int(p.returncode), ended[name]) for name, p in procs.items()}


def _interrupt(procs: Iterable[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
