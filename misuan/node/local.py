"""Every party of a job as its own OS process on this machine: `misuan run` children over loopback.

Used by ``misuan simulate`` and ``misuan demo``: the children are the same ``misuan run`` a real node
operator starts, talking gRPC with mutual TLS on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import IO


def free_port() -> int:
    """A loopback port that is free now (released before a child binds it: rarely, another takes it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_party_processes(
    spec: Path,
    parties: Sequence[str],
    *,
    workdir: Path,
    tls_dir: Path,
    ports: Mapping[str, int],
    log_dir: Path | None = None,
    shown: Collection[str] | None = None,
    debug: bool = False,
    resume: bool = False,
) -> dict[str, int]:
    """Start ``misuan run SPEC --as P`` for every party and wait; returns each party's exit code.

    A party in ``shown`` (default: all) writes its progress and errors to this terminal; the others
    write them to ``log_dir/<party>.log``. Standard output goes to the log (or nowhere).
    """
    book = [a for p, port in ports.items() for a in ("--address", f"{p}=127.0.0.1:{port}")]
    procs: dict[str, subprocess.Popen[bytes]] = {}
    with contextlib.ExitStack() as files:
        for party in parties:
            cmd = [sys.executable, "-m", "misuan.cli", *(["--debug"] if debug else []), "run", str(spec),
                   "--as", party, "--workdir", str(workdir), "--tls-dir", str(tls_dir),
                   "--listen", f"127.0.0.1:{ports[party]}", *book, *(["--resume"] if resume else [])]
            log: IO[bytes] | int = subprocess.DEVNULL
            if log_dir is not None:
                log_dir.mkdir(parents=True, exist_ok=True)
                log = files.enter_context(open(log_dir / f"{party}.log", "wb"))
            stderr = None if shown is None or party in shown else log
            procs[party] = subprocess.Popen(cmd, stdout=log, stderr=stderr)
        return wait_all(procs)


def wait_all(procs: dict[str, subprocess.Popen[bytes]], grace_s: float = 10.0) -> dict[str, int]:
    """Wait for every party; once one fails, give the others ``grace_s`` to stop, then interrupt them."""
    first_failure: float | None = None
    try:
        while any(p.poll() is None for p in procs.values()):
            if first_failure is None and any(p.returncode not in (None, 0) for p in procs.values()):
                first_failure = time.monotonic()
            if first_failure is not None and time.monotonic() - first_failure > grace_s:
                for p in procs.values():
                    if p.poll() is None:
                        p.send_signal(signal.SIGINT)
                first_failure = float("inf")
            time.sleep(0.05)
    except KeyboardInterrupt:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs.values():
            p.wait()
        raise
    return {name: int(p.returncode) for name, p in procs.items()}
