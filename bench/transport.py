"""Transport benchmark: gRPC + mutual TLS between two processes on loopback.

Measures the round-trip time of a small message (ping-pong through ``Channel.send``/``recv``) and
the throughput of one large message, and prints each against baselines taken in the same run:
a plain TCP socket between two processes (no TLS, no gRPC, no framing), the floor the transport
cannot beat on this machine, and for round trips a bare grpcio unary echo call with mutual TLS
(what one gRPC call costs here without misuan).

    python bench/transport.py [--mb 300] [--pings 500]
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import socket
import statistics
import tempfile
import time
from typing import Any

import grpc
import numpy as np

from misuan.crypto.certs import TlsFiles
from misuan.net.channel import Channel
from misuan.net.local import make_test_pki, run_local

WARMUP = 50


# --- over the misuan channel (gRPC + mTLS) -----------------------------------------------------------
def _ping(chan: Channel, n: int) -> list[float]:
    times = []
    for i in range(n + WARMUP):
        t = time.perf_counter()
        chan.send("partner", "ping", i)
        chan.recv("partner", "pong")
        times.append(time.perf_counter() - t)
    return times[WARMUP:]


def _pong(chan: Channel, n: int) -> None:
    for _ in range(n + WARMUP):
        chan.send("bank", "pong", chan.recv("bank", "ping"))


def _send_big(chan: Channel, nbytes: int) -> float:
    data = np.ones(nbytes, dtype=np.uint8)
    chan.send("partner", "warm", 0)
    chan.recv("partner", "ready")
    t = time.perf_counter()
    chan.send("partner", "big", data)
    chan.recv("partner", "done")
    return time.perf_counter() - t


def _recv_big(chan: Channel, nbytes: int) -> None:
    chan.recv("bank", "warm")
    chan.send("bank", "ready", 0)
    data = chan.recv("bank", "big")
    chan.send("bank", "done", int(data.shape[0] == nbytes))


# --- baseline: a plain TCP socket between two processes ------------------------------------------------
def _tcp_server(port_q: Any, n: int, nbytes: int) -> None:
    with socket.create_server(("127.0.0.1", 0)) as srv:
        port_q.put(srv.getsockname()[1])
        conn, _ = srv.accept()
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for _ in range(n + WARMUP):
                conn.sendall(conn.recv(64))
            buf = bytearray(nbytes)
            view, got = memoryview(buf), 0
            while got < nbytes:
                got += conn.recv_into(view[got:], min(1 << 20, nbytes - got))
            conn.sendall(b"k")


def _tcp_baseline(n: int, nbytes: int) -> tuple[list[float], float]:
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(target=_tcp_server, args=(q, n, nbytes))
    proc.start()
    port = q.get(timeout=30)
    times = []
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        msg = b"x" * 16
        for _ in range(n + WARMUP):
            t = time.perf_counter()
            s.sendall(msg)
            s.recv(64)
            times.append(time.perf_counter() - t)
        data = np.ones(nbytes, dtype=np.uint8)
        t = time.perf_counter()
        s.sendall(memoryview(data))
        s.recv(1)
        big_s = time.perf_counter() - t
    proc.join()
    return times[WARMUP:], big_s


# --- baseline: a bare grpcio unary echo call with mutual TLS ----------------------------------------------
def _grpc_echo_server(tls: TlsFiles, port_q: Any, stop: Any) -> None:
    from concurrent import futures

    handler = grpc.method_handlers_generic_handler("Echo", {"E": grpc.unary_unary_rpc_method_handler(lambda r, c: r)})
    server = grpc.server(futures.ThreadPoolExecutor(4), handlers=[handler])
    creds = grpc.ssl_server_credentials(
        [(tls.key.read_bytes(), tls.cert.read_bytes())], root_certificates=tls.ca.read_bytes(), require_client_auth=True
    )
    port_q.put(server.add_secure_port("127.0.0.1:0", creds))
    server.start()
    stop.wait(120)
    server.stop(0)


def _grpc_baseline(n: int, workdir: str) -> list[float]:
    pki = make_test_pki(workdir, ["bank", "partner"])
    ctx = multiprocessing.get_context("spawn")
    q, stop = ctx.Queue(), ctx.Event()
    proc = ctx.Process(target=_grpc_echo_server, args=(pki["partner"], q, stop))
    proc.start()
    port = q.get(timeout=60)
    t = pki["bank"]
    creds = grpc.ssl_channel_credentials(t.ca.read_bytes(), t.key.read_bytes(), t.cert.read_bytes())
    times = []
    with grpc.secure_channel(f"127.0.0.1:{port}", creds, options=[("grpc.ssl_target_name_override", "partner")]) as ch:
        echo = ch.unary_unary("/Echo/E")
        for _ in range(n + WARMUP):
            start = time.perf_counter()
            echo(b"x" * 16)
            times.append(time.perf_counter() - start)
    stop.set()
    proc.join()
    return times[WARMUP:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=300, help="size of the large message in MiB")
    ap.add_argument("--pings", type=int, default=500, help="round trips to time")
    args = ap.parse_args()
    nbytes = args.mb << 20

    pings = run_local(
        {"bank": functools.partial(_ping, n=args.pings), "partner": functools.partial(_pong, n=args.pings)},
        transport="processes",
    )
    rtt = pings["bank"].result
    big = run_local(
        {"bank": functools.partial(_send_big, nbytes=nbytes), "partner": functools.partial(_recv_big, nbytes=nbytes)},
        transport="processes",
    )
    big_s = big["bank"].result
    tcp_rtt, tcp_big_s = _tcp_baseline(args.pings, nbytes)
    with tempfile.TemporaryDirectory() as tmp:
        unary = statistics.median(_grpc_baseline(args.pings, tmp))

    med, p99 = statistics.median(rtt), float(np.percentile(rtt, 99))
    tmed = statistics.median(tcp_rtt)
    mbps, tcp_mbps = nbytes / big_s / 1e6, nbytes / tcp_big_s / 1e6
    print(f"small-message round trip (send + recv of an int, each way): median {med * 1e6:.0f} us, "
          f"p99 {p99 * 1e6:.0f} us; plain TCP {tmed * 1e6:.0f} us (ratio {med / tmed:.0f}x); "
          f"one bare grpcio unary mTLS call {unary * 1e6:.0f} us (ratio {med / unary:.2f}x)")
    print(f"{args.mb} MiB message: {big_s:.2f} s = {mbps:.0f} MB/s; plain TCP {tcp_mbps:.0f} MB/s; "
          f"ratio {tcp_mbps / mbps:.1f}x slower")
    print(f"peak RSS: sender {big['bank'].max_rss_bytes >> 20} MiB, receiver {big['partner'].max_rss_bytes >> 20} MiB")


if __name__ == "__main__":
    main()
