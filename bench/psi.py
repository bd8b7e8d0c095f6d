"""PSI benchmark: misuan's KKRT-PSI and ECDH-PSI, two parties as separate processes, against baselines.

    python bench/psi.py --sizes 100000 1000000           # both protocols and the openmined-psi baseline
    python bench/psi.py --sizes 1000000 --no-baseline    # misuan only
    python bench/psi.py --sizes 1000000 --protocol kkrt --spu   # KKRT-PSI, and SecretFlow's engine (pip spu)

Each protocol and size prints one line ``<protocol> <n> x <n>: wall N s``: from starting the two party
processes to both having written the intersection file, each having read its IDs from a text file
written before the clock starts (the SecretFlow baseline is timed the same way, CSV to CSV).
With ``--spu`` (needs pip ``spu``, Python 3.10-3.11), SecretFlow's PSI engine runs RR22 and KKRT on
the same sets in the same run: two processes over its brpc link on loopback.

Each size ``n`` runs ``n x n`` random 16-digit IDs with 50% overlap (``--overlap``). The two parties
are separate OS processes; each uses a process pool for the curve work (``--workers``, default all
cores), so both parties share the machine's cores as they would in a colocated test.
Transport: gRPC + mutual TLS over loopback (``misuan.net.local``, ``transport="processes"``) when present,
else a local socket pair carrying the same wire-encoded, sequenced messages (``--transport``).

Printed per run: wall time of the protocol (from the channel being open to the result), peak
memory per party (the party process plus its workers, as the peak of their summed resident sets,
sampled every 0.2 s; and the party process's own high-water mark), bytes each party sent, the
profile of where its time went (hashing to the curve, blinding exchange, matching), and the ratio
against openmined-psi 2.x (``DataStructure.RAW``: the same DH-PSI with P-256, one process, one
thread, no transport; its message sizes are the serialised protobufs).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import multiprocessing
import multiprocessing.connection
import os
import resource
import socket
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from misuan.crypto import x25519_multibuffer  # noqa: E402
from misuan.crypto.ecdh import BlindingKey  # noqa: E402
from misuan.errors import PeerDisconnectedError  # noqa: E402
from misuan.net.channel import Channel, Mailbox  # noqa: E402
from misuan.protocols.psi import PsiParams, psi  # noqa: E402

PARTIES = ("bank", "partner")


# --- the two ID sets -----------------------------------------------------------------------------
def make_ids(party: str, n: int, overlap: float, seed: int = 7) -> list[str]:
    """``n`` distinct 16-digit IDs; the first ``overlap * n`` of a common pool are shared."""
    shared = int(n * overlap)
    rng = np.random.default_rng(seed)
    pool = rng.choice(10**16, size=2 * n - shared, replace=False)  # distinct across both sets
    own = pool[:n] if party == PARTIES[0] else pool[n - shared :]
    own = own.copy()
    np.random.default_rng(seed + (1 if party == PARTIES[0] else 2)).shuffle(own)
    return [f"{v:016d}" for v in own.tolist()]


# --- socket-pair transport (only when gRPC is not available) ------------------------------------
_HEADER = struct.Struct("<IQQ")  # step length, sequence number, payload length


class SocketPairChannel(Channel):
    """Bench-only transport: one party's end of a connected socket pair; same framing rules as gRPC."""

    def __init__(self, party: str, sock: socket.socket, job_id: str = "bench-psi") -> None:
        super().__init__(party, PARTIES, job_id)
        self.sock = sock
        self.peer = next(p for p in PARTIES if p != party)
        self.box = Mailbox()
        self.reader = threading.Thread(target=self._read, daemon=True, name=f"recv-{party}")
        self.reader.start()

    def _read_exact(self, n: int) -> bytearray:
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            k = self.sock.recv_into(view[got:], n - got)
            if k == 0:
                raise EOFError
            got += k
        return buf

    def _read(self) -> None:
        try:
            while True:
                step_len, seq, size = _HEADER.unpack(self._read_exact(_HEADER.size))
                step = self._read_exact(step_len).decode()
                self.box.put(self.peer, step, seq, self._read_exact(size))
        except (EOFError, OSError):
            self.box.close_sender(self.peer, "socket closed")

    def _transmit(self, to: str, step: str, seq: int, parts: list[bytes | memoryview], size: int) -> None:
        raw = step.encode()
        try:
            self.sock.sendall(_HEADER.pack(len(raw), seq, size) + raw)
            for part in parts:
                self.sock.sendall(part)
        except OSError as exc:
            raise PeerDisconnectedError(f"{to} closed the socket: {exc}") from exc

    def _mailbox(self) -> Mailbox:
        return self.box

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


# --- memory of a process tree ---------------------------------------------------------------------
def _tree_usage(root: int) -> tuple[int, dict[int, float]]:
    """Summed resident bytes of ``root`` and its descendants, and each one's CPU seconds so far."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    cpu: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry)
        children.setdefault(int(fields[1]), []).append(pid)
        rss[pid] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        cpu[pid] = (int(fields[11]) + int(fields[12])) / tick
    total, todo, tree_cpu = 0, [root], {}
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        tree_cpu[pid] = cpu.get(pid, 0.0)
        todo.extend(children.get(pid, []))
    return total, tree_cpu


class PeakMemory:
    """Samples the process tree: peak summed RSS, and CPU seconds of every process seen in it."""

    def __init__(self, interval_s: float = 0.2) -> None:
        self.peak = 0
        self.cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval_s,), daemon=True)

    @property
    def cpu_seconds(self) -> float:
        return sum(self.cpu.values())

    def _run(self, interval_s: float) -> None:
        while not self._stop.is_set():
            rss, cpu = _tree_usage(os.getpid())
            self.peak = max(self.peak, rss)
            for pid, seconds in cpu.items():
                self.cpu[pid] = max(self.cpu.get(pid, 0.0), seconds)
            self._stop.wait(interval_s)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# --- one party ------------------------------------------------------------------------------------
@dataclasses.dataclass
class PartyRun:
    party: str
    size: int
    seconds: float
    bytes_sent: int
    peak_tree_bytes: int
    peak_main_bytes: int
    cpu_s: float  # CPU seconds of the party process and its workers (sampled every 0.2 s)
    timings: dict[str, float]
    order_digest: str  # SHA-256 of the intersection in the party's order: equal on both sides
    set_digest: str = ""  # SHA-256 of the sorted intersection: equal to the plaintext twin's
    done_at: float = 0.0  # time.monotonic() when the intersection file was written


def write_id_files(folder: str | Path, n: int, overlap: float) -> dict[str, Path]:
    """Each party's IDs as a text file, one per line, written before the clock starts (as the
    SecretFlow baseline gets its CSV): reading it is part of the party's work."""
    paths = {}
    for party in PARTIES:
        paths[party] = Path(folder) / f"{party}-ids.txt"
        paths[party].write_text("\n".join(make_ids(party, n, overlap)) + "\n")
    return paths


def _party_work(
    chan: Channel, party: str, id_file: str, workers: int | None, protocol: str = "ecdh"
) -> dict[str, Any]:
    """Read the IDs, run PSI, write the intersection file (atomically): the timed part, ending at
    ``done_at`` (``time.monotonic``, comparable across the processes). Then the check's digests."""
    peer = next(p for p in PARTIES if p != party)
    cpu_before = time.process_time()
    with PeakMemory() as mem:
        ids = Path(id_file).read_text().splitlines()
        t0 = time.perf_counter()
        params = PsiParams(workers=workers, protocol=protocol)  # type: ignore[arg-type]
        result = psi(chan, ids, peer, params, progress=False)
        seconds = time.perf_counter() - t0
        inter = result.intersection or []
        out = Path(id_file).with_name(f"{party}-intersection.txt")
        tmp = out.with_suffix(".tmp")
        tmp.write_text("\n".join(inter) + "\n")
        os.replace(tmp, out)
        done_at = time.monotonic()
    return dataclasses.asdict(
        PartyRun(
            party=party,
            size=int(result.size or 0),
            seconds=seconds,
            bytes_sent=chan.stats.bytes_sent,
            peak_tree_bytes=mem.peak,
            peak_main_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            cpu_s=mem.cpu_seconds - cpu_before,
            timings=result.timings,
            order_digest=hashlib.sha256("\n".join(inter).encode()).hexdigest(),
            set_digest=hashlib.sha256("\n".join(sorted(inter)).encode()).hexdigest(),
            done_at=done_at,
        )
    )


def _socket_child(
    party: str, sock: socket.socket, id_file: str, workers: int | None, conn: multiprocessing.connection.Connection
) -> None:
    chan = SocketPairChannel(party, sock)
    try:
        conn.send_bytes(json.dumps(_party_work(chan, party, id_file, workers)).encode())
    except BaseException as exc:  # noqa: BLE001 - reported to the parent as text
        conn.send_bytes(json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode())
    finally:
        chan.close()


def _collect(conns: list[Any], procs: list[Any], t0: float) -> tuple[list[PartyRun], float]:
    """Each party's JSON reply, once every party process has finished; the first errors raised.
    Wall time: from ``t0`` (``time.monotonic``) to the last intersection file written."""
    replies = [json.loads(c.recv_bytes()) for c in conns]
    for proc in procs:
        proc.join()
    errors = [r["error"] for r in replies if "error" in r]
    if errors:
        raise RuntimeError("; ".join(errors))
    runs = [PartyRun(**r) for r in replies]
    return runs, max(r.done_at for r in runs) - t0


def run_over_socketpair(n: int, overlap: float, workers: int | None) -> tuple[list[PartyRun], float]:
    import tempfile

    ctx = multiprocessing.get_context("fork")  # the parent is single-threaded here
    a, b = socket.socketpair()
    procs, conns = [], []
    tmp = tempfile.TemporaryDirectory()
    files = write_id_files(tmp.name, n, overlap)
    t0 = time.monotonic()
    for party, sock in zip(PARTIES, (a, b), strict=True):
        recv_end, send_end = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_socket_child, args=(party, sock, str(files[party]), workers, send_end))
        proc.start()
        procs.append(proc)
        conns.append(recv_end)
    a.close()
    b.close()
    try:
        return _collect(conns, procs, t0)
    finally:
        tmp.cleanup()


def run_over_grpc(n: int, overlap: float, workers: int | None, protocol: str = "ecdh") -> tuple[list[PartyRun], float]:
    """Each party in its own process (it may start its worker pool), gRPC + mTLS: the local-run harness."""
    import functools
    import tempfile

    from misuan.net.local import make_test_pki, run_local

    with tempfile.TemporaryDirectory() as tmp:
        pki = make_test_pki(tmp, PARTIES)
        files = write_id_files(tmp, n, overlap)
        t0 = time.monotonic()
        fns = {
            p: functools.partial(_party_work, party=p, id_file=str(files[p]), workers=workers, protocol=protocol)
            for p in PARTIES
        }
        out = run_local(fns, transport="processes", tls=pki, job_id="bench-psi", timeout_s=3600.0)
    runs = [PartyRun(**out[p].result) for p in PARTIES]
    return runs, max(r.done_at for r in runs) - t0


def _openmined_child(n: int, overlap: float, conn: multiprocessing.connection.Connection) -> None:
    import private_set_intersection.python as om

    client_ids, server_ids = make_ids(PARTIES[0], n, overlap), make_ids(PARTIES[1], n, overlap)
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    server = om.server.CreateWithNewKey(True)
    client = om.client.CreateWithNewKey(True)
    setup = server.CreateSetupMessage(1e-9, len(client_ids), server_ids, om.DataStructure.RAW)
    t_setup = time.perf_counter()
    request = client.CreateRequest(client_ids)
    t_request = time.perf_counter()
    response = server.ProcessRequest(request)
    t_response = time.perf_counter()
    size = len(client.GetIntersection(setup, response))
    t_end = time.perf_counter()
    conn.send_bytes(
        json.dumps(
            {
                "size": size,
                "seconds": t_end - t0,
                "cpu_s": time.process_time() - cpu0,
                "timings": {
                    "server_setup": t_setup - t0,
                    "client_request": t_request - t_setup,
                    "server_response": t_response - t_request,
                    "client_intersect": t_end - t_response,
                },
                "bytes": setup.ByteSize() + request.ByteSize() + response.ByteSize(),
                "peak_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            }
        ).encode()
    )


def run_openmined(n: int, overlap: float) -> dict[str, Any]:
    ctx = multiprocessing.get_context("fork")
    recv_end, send_end = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_openmined_child, args=(n, overlap, send_end))
    proc.start()
    reply: dict[str, Any] = json.loads(recv_end.recv_bytes())
    proc.join()
    return reply


# --- main -----------------------------------------------------------------------------------------
def _mib(b: float) -> str:
    return f"{b / 2**20:,.0f} MiB"


def _run_misuan(n: int, protocol: str, transport: str, backend: str, args: argparse.Namespace) -> dict[str, Any]:
    if transport == "grpc":
        runs, wall = run_over_grpc(n, args.overlap, args.workers, protocol)
    else:
        runs, wall = run_over_socketpair(n, args.overlap, args.workers)
    expected = int(n * args.overlap)
    twin = sorted(set(make_ids(PARTIES[0], n, args.overlap)) & set(make_ids(PARTIES[1], n, args.overlap)))
    twin_digest = hashlib.sha256("\n".join(twin).encode()).hexdigest()
    ok = (all(r.size == expected for r in runs) and len({r.order_digest for r in runs}) == 1
          and all(r.set_digest == twin_digest for r in runs))
    protocol_s = max(r.seconds for r in runs)
    what = "KKRT-PSI (OT extension, AES)" if protocol == "kkrt" else f"ECDH-PSI (X25519 by {backend})"
    print(f"\n== {n:,} x {n:,} IDs, {expected:,} shared: misuan {what}, reveal=both ==")
    print(f"{protocol} {n} x {n}: wall {wall:.1f} s")
    print(f"  correct: {ok} (both sizes {expected:,}, the plaintext intersection, same customers in the same order)")
    cpu = sum(r.cpu_s for r in runs)
    cores = os.cpu_count() or 1
    print(f"  wall {wall:.1f} s (process start to results), protocol {protocol_s:.1f} s; load average {os.getloadavg()[0]:.1f}")
    print(f"  CPU {cpu:.1f} s over both parties -> {cpu / cores:.1f} s on {cores} idle cores")
    for r in runs:
        prof = ", ".join(f"{k} {v:.1f} s" for k, v in r.timings.items())
        print(
            f"  {r.party:8s} sent {_mib(r.bytes_sent)}, peak memory {_mib(r.peak_tree_bytes)} "
            f"(party process alone {_mib(r.peak_main_bytes)}), CPU {r.cpu_s:.1f} s; {prof}"
        )
    return {
        "n": n, "protocol": protocol, "overlap": args.overlap, "transport": transport, "x25519": backend, "correct": ok,
        "wall_s": wall, "protocol_s": protocol_s, "cpu_s": cpu, "load_average": os.getloadavg()[0],
        "parties": [dataclasses.asdict(r) for r in runs],
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--overlap", type=float, default=0.5)
    ap.add_argument("--workers", type=int, default=None, help="processes per party (default: all cores)")
    ap.add_argument("--transport", choices=["auto", "grpc", "socket"], default="auto")
    ap.add_argument("--no-baseline", action="store_true", help="skip openmined-psi")
    ap.add_argument("--protocol", choices=["all", "kkrt", "ecdh"], default="all", help="misuan's PSI protocol(s) to run")
    ap.add_argument("--spu", action="store_true", help="also run SecretFlow's PSI engine (pip spu): RR22 and KKRT")
    ap.add_argument(
        "--x25519",
        choices=["auto", "openssl", "multibuffer"],
        default="auto",
        help="which library computes X25519 (sets MISUAN_X25519 for both parties; default: crypto_mb where it loads)",
    )
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)
    os.environ[x25519_multibuffer.BACKEND_ENV] = args.x25519  # the party processes inherit it
    backend = BlindingKey().backend
    why = x25519_multibuffer.unavailable_reason()
    transport = args.transport
    if transport == "auto":
        try:
            import misuan.net.local  # noqa: F401

            transport = "grpc"
        except ImportError:
            transport = "socket"
    print(f"machine: {os.cpu_count()} cores; transport: {transport}; workers per party: {args.workers or 'all cores'}")
    print(f"X25519 by {backend}" + (f" ({why})" if why else ""))
    records = []
    protocols = ["kkrt", "ecdh"] if args.protocol == "all" else [args.protocol]
    for n in args.sizes:
        for protocol in protocols:
            records.append(_run_misuan(n, protocol, transport, backend, args))
        if args.spu:
            from bench.spu_psi import run_spu

            for spu_protocol in ("RR22", "KKRT"):
                res = run_spu(n, args.overlap, spu_protocol)
                print(f"spu-{spu_protocol.lower()} {n} x {n}: wall {res['seconds']:.1f} s (size {res['size']:,}, "
                      f"peak {_mib(res['peak_bytes'])} per party)")
                records.append({"n": n, "spu": spu_protocol, **res})
        if not args.no_baseline:
            base = run_openmined(n, args.overlap)
            steps = ", ".join(f"{k} {v:.1f} s" for k, v in base["timings"].items())
            print(
                f"openmined {n} x {n}: wall {base['seconds']:.1f} s (P-256, RAW, 1 thread, compute only), size "
                f"{base['size']:,}, {_mib(base['bytes'])} of messages, peak {_mib(base['peak_bytes'])}; {steps}"
            )
            records.append({"n": n, "openmined": base})
    if args.json:
        args.json.write_text(json.dumps(records, indent=2))


if __name__ == "__main__":
    main()
