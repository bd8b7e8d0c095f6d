"""Run each party of a job in its own OS process, talking gRPC + mutual TLS over loopback.

For tests, benchmarks and demos: the same party functions that :func:`misuan.protocols.simulation.
run_parties` runs in threads over in-memory channels run here as separate processes over the real
transport::

    pki = make_test_pki(tmpdir, ["bank", "partner"])
    out = run_party_processes({"bank": partial(secure_sum, values=x), "partner": ...}, tls=pki)
    out["bank"].result, out["bank"].disclosures, out["bank"].max_rss_bytes

Each child starts its :class:`PartyServer` on ``127.0.0.1:0`` (a free port chosen by the kernel, so
no port races), reports the port to the parent, receives the address book, opens its channel and
calls its function. Functions must be picklable (module-level functions or ``functools.partial``)
and return a value the wire format encodes. Results come back wire-encoded, never pickled.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import multiprocessing.connection
import os
import resource
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from misuan import errors
from misuan.crypto.certs import TlsFiles, create_ca, issue_party_cert
from misuan.errors import MisuanError, PeerDisconnectedError
from misuan.net import wire
from misuan.net.channel import Channel
from misuan.net.disclosure import Disclosure, MemoryRecorder
from misuan.net.grpc_channel import PartyServer, open_grpc_channel

__all__ = ["PartyOutcome", "make_test_pki", "run_party_processes"]

PartyFn = Callable[[Channel], Any]


def make_test_pki(directory: str | os.PathLike[str], parties: Sequence[str]) -> dict[str, TlsFiles]:
    """A throw-away CA in ``directory`` and a certificate for each party (localhost SANs)."""
    create_ca(directory, name="misuan test CA", days=2)
    return {p: issue_party_cert(directory, p, days=1) for p in parties}


@dataclasses.dataclass
class PartyOutcome:
    party: str
    result: Any = None
    error: BaseException | None = None
    disclosures: list[Disclosure] = dataclasses.field(default_factory=list)
    stats: dict[str, Any] = dataclasses.field(default_factory=dict)
    max_rss_bytes: int = 0  # peak resident memory of the party's process
    seconds: float = 0.0  # from the channel being open to the function returning


def _child(
    party: str,
    fn: PartyFn,
    job_id: str,
    tls: TlsFiles,
    conn: multiprocessing.connection.Connection,
    timeout_s: float,
    connect_timeout_s: float,
) -> None:
    reply: dict[str, Any]
    try:
        server = PartyServer(party, tls, "127.0.0.1:0")
        try:
            conn.send_bytes(wire.encode({"port": server.port}))
            addresses = wire.decode(conn.recv_bytes())
            if not addresses:
                raise PeerDisconnectedError(f"another party failed before job {job_id!r} started; {party} did not run")
            recorder = MemoryRecorder()
            chan = open_grpc_channel(
                party, addresses, job_id, tls, recorder=recorder, timeout_s=timeout_s,
                connect_timeout_s=connect_timeout_s, server=server,
            )
            start = time.perf_counter()
            try:
                result = fn(chan)
                seconds = time.perf_counter() - start
            finally:
                chan.close()
            reply = {
                "result": result,
                "seconds": seconds,
                "stats": chan.stats.as_dict(),
                "disclosures": [dataclasses.asdict(d) for d in recorder.entries],
            }
        finally:
            server.stop(grace_s=0.5)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which re-raises
        reply = {"error": type(exc).__name__, "message": str(exc), "traceback": traceback.format_exc()}
    reply["max_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    try:
        conn.send_bytes(wire.encode(reply))
    except (TypeError, ValueError) as exc:
        conn.send_bytes(wire.encode({"error": "TypeError", "message": f"{party}'s result cannot be sent back: {exc}",
                                     "max_rss": reply["max_rss"]}))


def _rebuild_error(party: str, reply: Mapping[str, Any]) -> BaseException:
    cls = getattr(errors, str(reply["error"]), None)
    if isinstance(cls, type) and issubclass(cls, MisuanError):
        return cls(str(reply["message"]))
    return RuntimeError(f"{party} failed with {reply['error']}: {reply['message']}\n{reply.get('traceback', '')}")


def _context() -> multiprocessing.context.BaseContext:
    # forkserver: children fork from a clean process that never ran gRPC (forking a process with
    # live gRPC threads is unsafe), yet skip re-importing numpy and grpc for each party
    if sys.platform.startswith("linux"):
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["misuan.net.loopback"])
        return ctx
    return multiprocessing.get_context("spawn")


def run_party_processes(
    fns: Mapping[str, PartyFn],
    *,
    tls: Mapping[str, TlsFiles] | None = None,
    job_id: str = "loopback-job",
    timeout_s: float = 120.0,
    connect_timeout_s: float = 20.0,
    raise_errors: bool = True,
) -> dict[str, PartyOutcome]:
    """Run ``fns[p](channel)`` for each party ``p`` in its own process; return each outcome.

    ``tls`` gives each party's files (default: a fresh test CA in a temporary directory).
    ``timeout_s`` bounds each ``recv`` and the whole run. With ``raise_errors`` the first real
    failure is raised (a peer's :class:`PeerDisconnectedError` only if nothing else failed), as
    :func:`misuan.protocols.simulation.run_parties` does; otherwise errors are in the outcomes.
    """
    parties = list(fns)
    with tempfile.TemporaryDirectory(prefix="misuan-pki-") as tmp:
        files = dict(tls) if tls is not None else make_test_pki(Path(tmp), parties)
        outcomes = _run(fns, files, job_id, timeout_s, connect_timeout_s)
    if raise_errors:
        failed = [o.error for o in outcomes.values() if o.error is not None]
        causes = [e for e in failed if not isinstance(e, PeerDisconnectedError)]
        if failed:
            raise (causes or failed)[0]
    return outcomes


def _run(
    fns: Mapping[str, PartyFn], tls: Mapping[str, TlsFiles], job_id: str, timeout_s: float, connect_timeout_s: float
) -> dict[str, PartyOutcome]:
    ctx = _context()
    deadline = time.monotonic() + timeout_s + connect_timeout_s
    conns: dict[str, multiprocessing.connection.Connection] = {}
    procs: dict[str, Any] = {}
    try:
        for party, fn in fns.items():
            parent_end, child_end = ctx.Pipe()
            proc = ctx.Process(  # type: ignore[attr-defined]
                target=_child,
                args=(party, fn, job_id, tls[party], child_end, timeout_s, connect_timeout_s),
                name=f"misuan-{party}",
                daemon=True,
            )
            proc.start()
            child_end.close()
            conns[party], procs[party] = parent_end, proc
        replies: dict[str, dict[str, Any]] = {}
        ports: dict[str, int] = {}
        for party, conn in conns.items():
            first = _receive(party, conn, procs[party], deadline)
            if "port" in first:
                ports[party] = int(first["port"])
            else:
                replies[party] = first  # failed before listening (bad certificate, ...)
        book = wire.encode({p: f"127.0.0.1:{port}" for p, port in ports.items()})
        for party in ports:
            conns[party].send_bytes(book if len(ports) == len(fns) else wire.encode({}))
        for party in ports:
            replies[party] = _receive(party, conns[party], procs[party], deadline)
        for proc in procs.values():
            proc.join(timeout=max(0.1, deadline - time.monotonic()))
    finally:
        for proc in procs.values():
            if proc.is_alive():
                proc.kill()
                proc.join()
        for conn in conns.values():
            conn.close()
    return {p: _outcome(p, replies[p]) for p in fns}


def _receive(party: str, conn: multiprocessing.connection.Connection, proc: Any, deadline: float) -> dict[str, Any]:
    ready = multiprocessing.connection.wait([conn, proc.sentinel], timeout=max(0.0, deadline - time.monotonic()))
    if conn in ready:
        try:
            reply = wire.decode(conn.recv_bytes())
            if isinstance(reply, dict):
                return reply
        except EOFError:
            pass
    if not ready:
        return {"error": "PeerTimeoutError", "message": f"{party}'s process did not finish in time", "max_rss": 0}
    return {
        "error": "PeerDisconnectedError",
        "message": f"{party}'s process exited (code {proc.exitcode}) without reporting a result",
        "max_rss": 0,
    }


def _outcome(party: str, reply: dict[str, Any]) -> PartyOutcome:
    out = PartyOutcome(party=party, max_rss_bytes=int(reply.get("max_rss", 0)))
    if "error" in reply:
        out.error = _rebuild_error(party, reply)
        return out
    out.result = reply["result"]
    out.seconds = float(reply["seconds"])
    out.stats = reply["stats"]
    out.disclosures = [Disclosure(**{**d, "shape": tuple(d["shape"])}) for d in reply["disclosures"]]
    return out

