"""The local-run harness: every party of a job on this machine, over either transport.

One argument chooses how the parties run; the party functions are the same::

    fns = {"bank": partial(secure_sum, values=x), "partner": partial(secure_sum, values=y)}
    out = run_local(fns)                          # threads, in-memory channels (misuan.net.memory)
    out = run_local(fns, transport="processes")   # OS processes, gRPC + mutual TLS on 127.0.0.1
    out["bank"].result, out["bank"].disclosures, out["bank"].stats, out["bank"].max_rss_bytes

A party function takes its channel (:func:`run_local`), or a channel opener when it opens the
channel itself with its own disclosure recorder, as :func:`misuan.node.runner.run_party` does with
its ledger (:func:`run_local_openers`). Each party's :class:`LocalOutcome` holds its result or
error, what it disclosed and learned, its traffic and time.

When a party fails, its channel is closed at once, so the others stop with
:class:`PeerDisconnectedError` instead of waiting out their timeout; the first real cause is then
raised (a peer's :class:`PeerDisconnectedError` only if nothing else failed), or, with
``raise_errors=False``, left in the outcomes.

Processes: each child starts its :class:`PartyServer` on ``127.0.0.1:0`` (a free port chosen by
the kernel, so no port races), reports the port to the parent, receives the address book, opens its
channel and calls its function. Functions must be picklable (module-level functions or
``functools.partial`` of them) and return a value the wire format encodes: results come back
wire-encoded, never pickled. ``tls`` gives each party's files (default: a throw-away test CA).
"""

from __future__ import annotations

import dataclasses
import functools
import multiprocessing
import multiprocessing.connection
import os
import resource
import socket
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from misuan import errors
from misuan.crypto.certs import TlsFiles, create_ca, issue_party_cert
from misuan.errors import MisuanError, PeerDisconnectedError
from misuan.net import wire
from misuan.net.channel import DEFAULT_TIMEOUT_S, Channel
from misuan.net.disclosure import Disclosure, DisclosureRecorder, MemoryRecorder
from misuan.net.grpc_channel import open_grpc_channel
from misuan.net.grpc_server import PartyServer
from misuan.net.memory import MemoryNetwork

__all__ = [
    "ChannelOpener",
    "LocalOutcome",
    "Transport",
    "free_port",
    "make_test_pki",
    "raise_first_cause",
    "run_local",
    "run_local_openers",
]

Transport = Literal["threads", "processes"]
# opens the party's channel; the recorder (e.g. the party's ledger) gets the party's disclosures
ChannelOpener = Callable[[DisclosureRecorder | None], Channel]
PartyFn = Callable[[Channel], Any]
OpeningPartyFn = Callable[[ChannelOpener], Any]

# default recv timeout: a channel's own default in threads; shorter in processes, where it also
# bounds the whole run (a child that hangs is killed then)
THREADS_TIMEOUT_S = DEFAULT_TIMEOUT_S
PROCESSES_TIMEOUT_S = 120.0


@dataclasses.dataclass
class LocalOutcome:
    """One party's outcome of a local run."""

    party: str
    result: Any = None
    error: BaseException | None = None
    disclosures: list[Disclosure] = dataclasses.field(default_factory=list)  # as the party recorded them
    stats: dict[str, Any] = dataclasses.field(default_factory=dict)  # its channel's ChannelStats.as_dict()
    seconds: float = 0.0  # from the channel being open to the function returning
    max_rss_bytes: int = 0  # peak resident memory of the party's process; 0 in threads (one shared process)
    transcript: list[tuple[str, str, Any]] | None = None  # with transcripts=True: (sender, step, message) received


def make_test_pki(
    directory: str | os.PathLike[str], parties: Sequence[str], name: str = "misuan test CA"
) -> dict[str, TlsFiles]:
    """A throw-away CA in ``directory`` and a certificate for each party (localhost SANs)."""
    create_ca(directory, name=name, days=2)
    return {p: issue_party_cert(directory, p, days=1) for p in parties}


def free_port() -> int:
    """A loopback port that is free now (released before a child binds it: rarely, another takes it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_local(
    fns: Mapping[str, PartyFn],
    *,
    transport: Transport = "threads",
    job_id: str = "local-job",
    timeout_s: float | None = None,
    connect_timeout_s: float = 20.0,
    tls: Mapping[str, TlsFiles] | None = None,
    transcripts: bool = False,
    raise_errors: bool = True,
) -> dict[str, LocalOutcome]:
    """Run ``fns[p](channel)`` for every party ``p`` concurrently; return each party's outcome.

    ``timeout_s`` bounds each ``recv`` (default 600 s in threads, 120 s in processes, where it also
    bounds the whole run). ``connect_timeout_s`` and ``tls`` apply to processes only. With
    ``transcripts`` each outcome keeps every message its party received. With ``raise_errors`` the
    first real failure is raised (see the module docstring); otherwise errors are in the outcomes.
    """
    return run_local_openers(
        {p: functools.partial(_with_channel, fn) for p, fn in fns.items()},
        transport=transport, job_id=job_id, timeout_s=timeout_s, connect_timeout_s=connect_timeout_s,
        tls=tls, transcripts=transcripts, raise_errors=raise_errors,
    )


def run_local_openers(
    fns: Mapping[str, OpeningPartyFn],
    *,
    transport: Transport = "threads",
    job_id: str = "local-job",
    timeout_s: float | None = None,
    connect_timeout_s: float = 20.0,
    tls: Mapping[str, TlsFiles] | None = None,
    transcripts: bool = False,
    raise_errors: bool = True,
) -> dict[str, LocalOutcome]:
    """As :func:`run_local`, but each ``fns[p](open_channel)`` opens its channel itself, once.

    ``open_channel(recorder)`` records the party's disclosures to ``recorder`` (e.g. its ledger) as
    well as to its outcome; ``open_channel(None)`` to its outcome only.
    """
    if transport == "threads":
        outcomes = _run_threads(fns, job_id, THREADS_TIMEOUT_S if timeout_s is None else timeout_s, transcripts)
    elif transport == "processes":
        wait_s = PROCESSES_TIMEOUT_S if timeout_s is None else timeout_s
        with tempfile.TemporaryDirectory(prefix="misuan-pki-") as tmp:
            files = dict(tls) if tls is not None else make_test_pki(Path(tmp), list(fns))
            outcomes = _run_processes(fns, _ChildSettings(job_id, wait_s, connect_timeout_s, transcripts), files)
    else:
        raise ValueError(f"transport must be 'threads' or 'processes', not {transport!r}")
    if raise_errors:
        raise_first_cause(outcomes)
    return outcomes


def raise_first_cause(outcomes: Mapping[str, LocalOutcome]) -> None:
    """Raise the first failure that is not a peer's disconnect (a consequence), if any party failed."""
    failed = [o.error for o in outcomes.values() if o.error is not None]
    causes = [e for e in failed if not isinstance(e, PeerDisconnectedError)]
    if failed:
        raise (causes or failed)[0]


# --- one party, whatever the transport ----------------------------------------------------------
def _with_channel(fn: PartyFn, open_channel: ChannelOpener) -> Any:
    return fn(open_channel(None))


class _RecordBoth:
    """Records to the party's own recorder (its ledger) first, then to its outcome."""

    def __init__(self, own: DisclosureRecorder, outcome: MemoryRecorder) -> None:
        self.own = own
        self.outcome = outcome

    def record(self, disclosure: Disclosure) -> None:
        self.own.record(disclosure)
        self.outcome.record(disclosure)


class _OutcomeOpener:
    """A party's channel opener that keeps what its outcome reports: channel, disclosures, start."""

    def __init__(self, open_transport: Callable[[DisclosureRecorder], Channel], transcripts: bool) -> None:
        self._open_transport = open_transport
        self._transcripts = transcripts
        self.recorded = MemoryRecorder()
        self.channel: Channel | None = None
        self.opened_at: float | None = None

    def __call__(self, recorder: DisclosureRecorder | None = None) -> Channel:
        if self.channel is not None:
            raise RuntimeError(f"{self.channel.party} opened its channel twice")
        chan = self._open_transport(self.recorded if recorder is None else _RecordBoth(recorder, self.recorded))
        if self._transcripts:
            chan.transcript = []
        self.channel, self.opened_at = chan, time.perf_counter()
        return chan


def _call(party: str, fn: OpeningPartyFn, opener: _OutcomeOpener) -> LocalOutcome:
    """``fn(opener)`` with its failure caught: the outcome says what happened."""
    out = LocalOutcome(party)
    start = time.perf_counter()
    try:
        out.result = fn(opener)
    except BaseException as exc:  # noqa: BLE001 - in the outcome; raised by the caller if asked
        out.error = exc
    out.seconds = time.perf_counter() - (start if opener.opened_at is None else opener.opened_at)
    out.disclosures = list(opener.recorded.entries)
    if opener.channel is not None:
        out.stats = opener.channel.stats.as_dict()
        out.transcript = opener.channel.transcript
    return out


# --- threads over in-memory channels ------------------------------------------------------------
def _run_threads(fns: Mapping[str, OpeningPartyFn], job_id: str, timeout_s: float, transcripts: bool) -> dict[str, LocalOutcome]:
    net = MemoryNetwork(list(fns), job_id=job_id)
    outcomes: dict[str, LocalOutcome] = {}

    def run(party: str) -> None:
        opener = _OutcomeOpener(functools.partial(_memory_channel, net, party, timeout_s), transcripts)
        outcome = _call(party, fns[party], opener)
        if outcome.error is not None:
            # close the party's end (also if it failed before opening it) to release the peers
            net.channel(party).close()
        outcomes[party] = outcome

    threads = [threading.Thread(target=run, args=(p,), name=f"party-{p}", daemon=True) for p in fns]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {p: outcomes[p] for p in fns}


def _memory_channel(net: MemoryNetwork, party: str, timeout_s: float, recorder: DisclosureRecorder) -> Channel:
    return net.channel(party, recorder=recorder, timeout_s=timeout_s)


# --- processes over gRPC + mutual TLS -----------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _ChildSettings:
    job_id: str
    timeout_s: float
    connect_timeout_s: float
    transcripts: bool


def _child(
    party: str, fn: OpeningPartyFn, tls: TlsFiles, settings: _ChildSettings, conn: multiprocessing.connection.Connection
) -> None:
    reply: dict[str, Any]
    try:
        server = PartyServer(party, tls, "127.0.0.1:0")
        try:
            conn.send_bytes(wire.encode({"port": server.port}))
            addresses = wire.decode(conn.recv_bytes())
            if not addresses:
                raise PeerDisconnectedError(
                    f"another party failed before job {settings.job_id!r} started; {party} did not run"
                )
            open_grpc = functools.partial(
                open_grpc_channel, party, addresses, settings.job_id, tls, timeout_s=settings.timeout_s,
                connect_timeout_s=settings.connect_timeout_s, server=server,
            )
            opener = _OutcomeOpener(lambda recorder: open_grpc(recorder=recorder), settings.transcripts)
            try:
                outcome = _call(party, fn, opener)
            finally:
                if opener.channel is not None:
                    opener.channel.close()
        finally:
            server.stop(grace_s=0.5)
        reply = _reply(outcome)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        reply = _error_reply(exc)
    reply["max_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    try:
        conn.send_bytes(wire.encode(reply))
    except (TypeError, ValueError) as exc:
        conn.send_bytes(wire.encode({"error": "TypeError", "message": f"{party}'s result cannot be sent back: {exc}",
                                     "max_rss": reply["max_rss"]}))


def _error_reply(exc: BaseException) -> dict[str, Any]:
    trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    # the nearest class of the error tree, so an error defined elsewhere (ParamError) keeps its kind
    # and exit code in the parent
    tree = next((c.__name__ for c in type(exc).__mro__ if getattr(errors, c.__name__, None) is c), type(exc).__name__)
    return {"error": tree, "message": str(exc), "traceback": trace}


def _reply(outcome: LocalOutcome) -> dict[str, Any]:
    """The outcome as the wire format carries it back to the parent."""
    reply = _error_reply(outcome.error) if outcome.error is not None else {"result": outcome.result}
    reply.update(
        seconds=outcome.seconds,
        stats=outcome.stats,
        disclosures=[dataclasses.asdict(d) for d in outcome.disclosures],
        transcript=None if outcome.transcript is None else [list(m) for m in outcome.transcript],
    )
    return reply


def _rebuild_error(party: str, reply: Mapping[str, Any]) -> BaseException:
    cls = getattr(errors, str(reply["error"]), None)
    if isinstance(cls, type) and issubclass(cls, MisuanError):
        return cls(str(reply["message"]))
    return RuntimeError(f"{party} failed with {reply['error']}: {reply['message']}\n{reply.get('traceback', '')}")


def _outcome(party: str, reply: Mapping[str, Any]) -> LocalOutcome:
    out = LocalOutcome(party=party, max_rss_bytes=int(reply.get("max_rss", 0)))
    if "error" in reply:
        out.error = _rebuild_error(party, reply)
    else:
        out.result = reply["result"]
    out.seconds = float(reply.get("seconds", 0.0))
    out.stats = reply.get("stats") or {}
    out.disclosures = [Disclosure(**{**d, "shape": tuple(d["shape"])}) for d in reply.get("disclosures", [])]
    transcript = reply.get("transcript")
    out.transcript = None if transcript is None else [(str(f), str(s), m) for f, s, m in transcript]
    return out


def _context() -> multiprocessing.context.BaseContext:
    # forkserver: children fork from a clean process that never ran gRPC (forking a process with
    # live gRPC threads is unsafe), yet skip re-importing numpy and grpc for each party
    if sys.platform.startswith("linux"):
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["misuan.net.local"])
        return ctx
    return multiprocessing.get_context("spawn")


def _run_processes(
    fns: Mapping[str, OpeningPartyFn], settings: _ChildSettings, tls: Mapping[str, TlsFiles]
) -> dict[str, LocalOutcome]:
    ctx = _context()
    deadline = time.monotonic() + settings.timeout_s + settings.connect_timeout_s
    conns: dict[str, multiprocessing.connection.Connection] = {}
    procs: dict[str, Any] = {}
    try:
        for party, fn in fns.items():
            parent_end, child_end = ctx.Pipe()
            # not daemonic: a party may start worker processes of its own (SecureBoost's n_jobs);
            # the finally below kills any child still running
            proc = ctx.Process(  # type: ignore[attr-defined]
                target=_child, args=(party, fn, tls[party], settings, child_end), name=f"misuan-{party}"
            )
            proc.start()
            child_end.close()
            conns[party], procs[party] = parent_end, proc
        replies = _exchange(conns, procs, deadline)
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


def _exchange(
    conns: Mapping[str, multiprocessing.connection.Connection], procs: Mapping[str, Any], deadline: float
) -> dict[str, dict[str, Any]]:
    """Collect every child's port, hand out the address book, collect every child's reply."""
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
        conns[party].send_bytes(book if len(ports) == len(conns) else wire.encode({}))
    for party in ports:
        replies[party] = _receive(party, conns[party], procs[party], deadline)
    return replies


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
