"""The gRPC + mutual TLS transport on loopback: in-process pairs and separate OS processes."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent import futures
from pathlib import Path

import grpc
import numpy as np
import pytest

from misuan.crypto.certs import TlsFiles, create_ca, issue_party_cert
from misuan.errors import (
    AuthenticationError,
    ConfigError,
    MalformedMessageError,
    PeerDisconnectedError,
    PeerUnreachableError,
)
from misuan.net import wire
from misuan.net.channel import Channel
from misuan.net.grpc_channel import GrpcChannel, open_grpc_channel
from misuan.net.grpc_framing import SERVICE, FrameHeader, Hello, encode_first_frame_head
from misuan.net.grpc_server import PartyServer
from misuan.net.local import free_port, make_test_pki, run_local
from misuan.protocols.secure_sum import secure_sum

PARTIES = ["bank", "partner", "telecom", "mallory"]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TlsFiles]:
    return make_test_pki(tmp_path_factory.mktemp("pki"), PARTIES)


@pytest.fixture(scope="module")
def foreign_pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TlsFiles]:
    """Certificates with the same party names from another CA."""
    return make_test_pki(tmp_path_factory.mktemp("foreign"), PARTIES)


def _open_all(
    tls: Mapping[str, TlsFiles], job_id: str, connect_timeout_s: float = 5.0, timeout_s: float = 20.0
) -> dict[str, GrpcChannel | BaseException]:
    """Open every party's channel at once in this process (each has its own server)."""
    servers = {p: PartyServer(p, f) for p, f in tls.items()}
    book = {p: s.address for p, s in servers.items()}
    out: dict[str, GrpcChannel | BaseException] = {}

    def one(p: str) -> None:
        try:
            out[p] = open_grpc_channel(
                p, book, job_id, tls[p], server=servers[p], connect_timeout_s=connect_timeout_s, timeout_s=timeout_s
            )
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            out[p] = exc

    threads = [threading.Thread(target=one, args=(p,)) for p in tls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p, c in out.items():
        if not isinstance(c, GrpcChannel):
            servers[p].stop(0)  # after every party tried, so each saw the others' servers
    return out


@pytest.fixture()
def pair(pki: dict[str, TlsFiles]) -> Iterator[dict[str, GrpcChannel]]:
    opened = _open_all({p: pki[p] for p in ["bank", "partner"]}, "pair-job")
    chans = {p: c for p, c in opened.items() if isinstance(c, GrpcChannel)}
    assert len(chans) == 2, opened
    yield chans
    for c in chans.values():
        c.close()
        c.server.stop(0)


# --- protocols over the real transport --------------------------------------------------------------
def _ledger_view(entries: list) -> list[tuple]:
    return sorted((d.job_id, d.step, d.discloser, d.recipient, d.what, d.shape, d.form) for d in entries)


@pytest.mark.parametrize("parties", [["bank", "partner"], ["bank", "partner", "telecom"]])
def test_secure_sum_in_processes_matches_in_memory_run(pki: dict[str, TlsFiles], parties: list[str]) -> None:
    rng = np.random.default_rng(7)
    data = {p: rng.integers(-(10**12), 10**12, size=1000) for p in parties}
    fns = {p: functools.partial(secure_sum, values=data[p]) for p in parties}
    grpc_out = run_local(fns, transport="processes", tls={p: pki[p] for p in parties}, job_id="sum")
    mem_out = run_local(fns, transport="threads", job_id="sum")
    for p in parties:
        np.testing.assert_array_equal(grpc_out[p].result, sum(data.values()))
        np.testing.assert_array_equal(grpc_out[p].result, mem_out[p].result)
        # the same disclosures in each party's ledger, recorded in the party's own process
        assert _ledger_view(grpc_out[p].disclosures) == _ledger_view(mem_out[p].disclosures)
        learned = [d for d in grpc_out[p].disclosures if d.recipient == p and d.form == "aggregate"]
        assert sorted(d.discloser for d in learned) == sorted(set(parties) - {p})
        # the traffic counted is the same as in memory
        assert grpc_out[p].stats["bytes_sent"] == mem_out[p].stats["bytes_sent"]
        assert grpc_out[p].stats["rounds"] == mem_out[p].stats["rounds"]


def test_secure_sum_over_grpc_threads(pair: dict[str, GrpcChannel]) -> None:
    x = {"bank": np.arange(100), "partner": np.arange(100) * -3}
    with futures.ThreadPoolExecutor(len(pair)) as pool:
        out = {p: pool.submit(secure_sum, pair[p], values=x[p]) for p in pair}
    for p in pair:
        np.testing.assert_array_equal(out[p].result(), np.arange(100) * -2)


@wire.message("test.Blob")
@dataclasses.dataclass
class _Blob:
    name: str
    data: np.ndarray
    extra: list[bytes]


def test_multi_frame_and_boundary_messages_arrive_intact(pair: dict[str, GrpcChannel]) -> None:
    bank, partner = pair["bank"], pair["partner"]
    rng = np.random.default_rng(1)
    big = _Blob("big", rng.integers(0, 2**63, size=700_000, dtype=np.int64), [b"x" * 3_000_000, b"", b"y"])
    sent = bank.send("partner", "big", big)  # ~8.6 MB: many frames, parts cut across frames
    got = partner.recv("bank", "big", expect=_Blob)
    assert got.name == "big" and got.extra == big.extra
    np.testing.assert_array_equal(got.data, big.data)
    assert got.data.flags.writeable  # received arrays are writable, as over MemoryNetwork
    assert sent == partner.stats.bytes_received
    # around the one-frame boundary (single RPC up to frame_bytes with the header)
    for n in [bank.frame_bytes - 200, bank.frame_bytes - 60, bank.frame_bytes, bank.frame_bytes + 1, 0]:
        payload = rng.integers(0, 256, size=n, dtype=np.uint8)
        partner.send("bank", "edge", payload)
        np.testing.assert_array_equal(bank.recv("partner", "edge"), payload)


def test_close_is_seen_promptly_by_the_peer(pair: dict[str, GrpcChannel]) -> None:
    bank, partner = pair["bank"], pair["partner"]
    partner.timeout_s = 30
    threading.Timer(0.2, bank.close).start()
    start = time.monotonic()
    with pytest.raises(PeerDisconnectedError, match="bank disconnected .* closed its channel"):
        partner.recv("bank", "never-sent")
    assert time.monotonic() - start < 3.0
    with pytest.raises(PeerDisconnectedError, match="bank has disconnected"):
        partner.send("bank", "late", 1)


# --- a party dying mid-job ----------------------------------------------------------------------------
def _send_then_die(chan: Channel) -> None:
    chan.send("partner", "step", np.arange(10))  # returns once delivered into partner's mailbox
    os._exit(3)  # no bye: the process vanishes as if killed


def _receive_twice(chan: Channel) -> None:
    chan.recv("bank", "step")
    chan.recv("bank", "step")  # never comes


def test_peer_process_dying_mid_job_raises_promptly(pki: dict[str, TlsFiles]) -> None:
    start = time.monotonic()
    out = run_local(
        {"bank": _send_then_die, "partner": _receive_twice},
        transport="processes",
        tls={p: pki[p] for p in ["bank", "partner"]},
        timeout_s=60,
        raise_errors=False,
    )
    assert isinstance(out["partner"].error, PeerDisconnectedError)
    assert "bank disconnected before sending step 'step' message #1" in str(out["partner"].error)
    assert "connection" in str(out["partner"].error)
    assert isinstance(out["bank"].error, PeerDisconnectedError)  # exited without reporting
    assert time.monotonic() - start < 15  # far below the 60 s receive timeout


# --- authentication -----------------------------------------------------------------------------------
def test_node_with_certificate_of_another_ca_is_refused(
    pki: dict[str, TlsFiles], foreign_pki: dict[str, TlsFiles]
) -> None:
    out = _open_all({"bank": pki["bank"], "partner": foreign_pki["partner"]}, "ca-job", connect_timeout_s=3)
    for p in out:
        err = out[p]
        assert isinstance(err, AuthenticationError), err
        assert "does not chain to the CA in" in str(err) and "anchor" in str(err)
    assert str(pki["bank"].ca) in str(out["bank"])


def test_peer_that_rejects_our_certificate_is_diagnosed(pki: dict[str, TlsFiles], foreign_pki: dict[str, TlsFiles]) -> None:
    """A server whose certificate we trust but which trusts another CA just closes the connection (TLS 1.3)."""
    srv = grpc.server(futures.ThreadPoolExecutor(2))
    creds = grpc.ssl_server_credentials(
        [(pki["partner"].key.read_bytes(), pki["partner"].cert.read_bytes())],
        root_certificates=foreign_pki["partner"].ca.read_bytes(),
        require_client_auth=True,
    )
    port = srv.add_secure_port("127.0.0.1:0", creds)
    srv.start()
    try:
        with pytest.raises(AuthenticationError, match=rf"does not accept this node's certificate {pki['bank'].cert}"):
            open_grpc_channel(
                "bank", {"bank": f"127.0.0.1:{free_port()}", "partner": f"127.0.0.1:{port}"}, "j", pki["bank"],
                connect_timeout_s=3,
            )
    finally:
        srv.stop(0)


def test_party_not_in_the_job_is_refused(pki: dict[str, TlsFiles]) -> None:
    partner_server = PartyServer("partner", pki["partner"])
    partner = GrpcChannel("partner", {"partner": partner_server.address, "bank": "127.0.0.1:1"}, "job", pki["partner"],
                          server=partner_server)
    try:
        # mallory has a certificate of the same CA but is not a party of the job: it is told what a
        # job id the server does not run is told, so it cannot tell running job ids from others
        with pytest.raises(PeerUnreachableError, match="is up but not running job 'job'"):
            open_grpc_channel(
                "mallory", {"mallory": f"127.0.0.1:{free_port()}", "partner": partner_server.address}, "job",
                pki["mallory"], connect_timeout_s=1,
            )
        answers = []
        for job_id in ("job", "no-such-job"):
            ch, ping = _raw_stub(pki["mallory"], partner_server.address, "partner", "Ping")
            with ch, pytest.raises(grpc.RpcError) as info:
                ping(wire.encode(Hello(job_id, "mallory")), timeout=5)
            answers.append((info.value.code(), info.value.details().replace(f"'{job_id}'", "<id>")))
        assert answers[0] == answers[1] and answers[0][0] == grpc.StatusCode.NOT_FOUND
    finally:
        partner.close()
        partner_server.stop(0)


def _raw_stub(tls: TlsFiles, address: str, target: str, method: str) -> tuple[grpc.Channel, grpc.UnaryUnaryMultiCallable]:
    creds = grpc.ssl_channel_credentials(tls.ca.read_bytes(), tls.key.read_bytes(), tls.cert.read_bytes())
    ch = grpc.secure_channel(address, creds, options=[("grpc.ssl_target_name_override", target)])
    return ch, ch.unary_unary(f"/{SERVICE}/{method}")


def test_sender_claiming_another_party_is_refused_and_nothing_delivered(pair: dict[str, GrpcChannel], pki: dict[str, TlsFiles]) -> None:
    partner = pair["partner"]
    before = partner.server.rejected
    ch, deliver = _raw_stub(pki["bank"], partner.server.address, "partner", "Deliver")
    with ch:
        frame = encode_first_frame_head(FrameHeader("pair-job", "telecom", "s", 0, 3)) + wire.encode(7)[:3]
        with pytest.raises(grpc.RpcError) as info:
            deliver(frame, timeout=5)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "certificate is for 'bank' but the message claims to come from 'telecom'" in info.value.details()
        # a message for a job the server does not run
        frame = encode_first_frame_head(FrameHeader("other-job", "bank", "s", 0, 0))
        with pytest.raises(grpc.RpcError) as info:
            deliver(frame, timeout=5)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND and "runs no job 'other-job'" in info.value.details()
    ch, ping = _raw_stub(pki["bank"], partner.server.address, "partner", "Ping")
    with ch:
        with pytest.raises(grpc.RpcError) as info:
            ping(wire.encode(Hello("pair-job", "partner")), timeout=5)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED and "claims to come from 'partner'" in info.value.details()
        assert ping(wire.encode(Hello("pair-job", "bank")), timeout=5) == b""
    assert partner.server.rejected == before + 3
    assert not partner._mailbox()._items


def test_address_of_another_party_is_refused(pki: dict[str, TlsFiles]) -> None:
    telecom = PartyServer("telecom", pki["telecom"])
    try:
        with pytest.raises(AuthenticationError, match=r"does not name 'partner'"):
            open_grpc_channel(
                "bank", {"bank": f"127.0.0.1:{free_port()}", "partner": telecom.address}, "j", pki["bank"],
                connect_timeout_s=3,
            )
    finally:
        telecom.stop(0)


def test_channel_for_unknown_job_is_told_so(pair: dict[str, GrpcChannel], pki: dict[str, TlsFiles]) -> None:
    start = time.monotonic()
    with pytest.raises(PeerUnreachableError, match="is up but not running job 'no-such-job'"):
        open_grpc_channel(
            "bank", {"bank": f"127.0.0.1:{free_port()}", "partner": pair["partner"].server.address}, "no-such-job",
            pki["bank"], connect_timeout_s=1.0,
        )
    assert time.monotonic() - start < 3


# --- malformed frames and unreachable peers -------------------------------------------------------------
def test_garbage_frames_are_refused_and_nothing_delivered(pair: dict[str, GrpcChannel]) -> None:
    bank, partner = pair["bank"], pair["partner"]
    before = partner.server.rejected
    head = functools.partial(encode_first_frame_head)
    bad: list[tuple[list[bytes], bool, str]] = [
        ([b"garbage"], True, "does not start with the misuan transport magic"),
        ([b"MSN1" + b"\xff\xff\x00\x00" + b"x" * 10], True, "over the limit or truncated"),
        ([head(FrameHeader("pair-job", "bank", "s", 0, 100)) + b"x" * 10], True, "10 payload bytes, 100 declared"),
        ([head(FrameHeader("pair-job", "bank", "s", 0, 100)), b"x" * 60], False, "ended after 60 of 100 bytes"),
        ([head(FrameHeader("pair-job", "bank", "s", 0, 10)), b"x" * 6, b"x" * 6], False, "more than the 10 bytes"),
        ([head(FrameHeader("pair-job", "bank", "s", 0, 1 << 50))], False, "exceeds this node's limit"),
        ([b"MSN1" + len(wire.encode(7)).to_bytes(4, "little") + wire.encode(7)], True, "not a FrameHeader"),
        # a 32 MiB "hello": refused from its first frame, by its type's size bound, before buffering the rest
        ([head(FrameHeader("pair-job", "bank", "s", 0, 32 << 20)) + wire.encode(Hello("x" * 64, "bank"))], False,
         "a transport.Hello of 33554432 bytes; that type is at most 65536 bytes"),
        ([head(FrameHeader("pair-job", "bank", "s", 0, 20)) + b"m" + (9).to_bytes(4, "little") + b"nosuch.Ty" + b"x" * 6],
         True, "unknown type 'nosuch.Ty'"),
    ]
    for frames, single, why in bad:
        with pytest.raises(MalformedMessageError, match=why):
            bank._send_frames("partner", "s", frames, single)
    assert partner.server.rejected == before + len(bad)
    assert not partner._mailbox()._items  # nothing was delivered
    # the same (step, seq) is still free: a valid message takes it and arrives
    bank.send("partner", "s", "after the garbage")
    assert partner.recv("bank", "s") == "after the garbage"


def test_unreachable_peer_named_within_connect_timeout(pki: dict[str, TlsFiles]) -> None:
    port = free_port()
    start = time.monotonic()
    with pytest.raises(PeerUnreachableError, match=rf"cannot reach partner at 127.0.0.1:{port} within 1.0 s"):
        open_grpc_channel(
            "bank", {"bank": f"127.0.0.1:{free_port()}", "partner": f"127.0.0.1:{port}"}, "j", pki["bank"],
            connect_timeout_s=1.0,
        )
    assert time.monotonic() - start < 3


# --- a large message between processes, in bounded memory ----------------------------------------------
BIG = 300 << 20


def _big_pattern() -> np.ndarray:
    return np.tile(np.arange(251, dtype=np.uint8), BIG // 251 + 1)[:BIG]


def _send_big(chan: Channel) -> str:
    data = _big_pattern()
    chan.send("partner", "big", data)
    chan.recv("partner", "done")
    return hashlib.blake2b(memoryview(data)).hexdigest()


def _recv_big(chan: Channel) -> str:
    data = chan.recv("bank", "big")
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.shape == (BIG,)):
        raise AssertionError(f"got {type(data)}")
    chan.send("bank", "done", True)
    return hashlib.blake2b(memoryview(data)).hexdigest()


@pytest.mark.slow
def test_300_mb_between_processes_in_bounded_memory(pki: dict[str, TlsFiles]) -> None:
    start = time.monotonic()
    out = run_local(
        {"bank": _send_big, "partner": _recv_big}, transport="processes", tls={p: pki[p] for p in ["bank", "partner"]},
        timeout_s=120,
    )
    assert out["bank"].result == out["partner"].result
    assert out["partner"].stats["bytes_received"] > BIG
    for p in out:
        # the 300 MB buffer itself plus the interpreter, numpy and gRPC: no second copy
        assert out[p].max_rss_bytes < 700 << 20, (p, out[p].max_rss_bytes >> 20)
    assert time.monotonic() - start < 60


def test_certificate_files_may_live_elsewhere(tmp_path: Path) -> None:
    """Each node keeps only the CA certificate and its own files, in its own directory."""
    create_ca(tmp_path / "ca")
    tls = {p: issue_party_cert(tmp_path / "ca", p, out_dir=tmp_path / p) for p in ["bank", "partner"]}
    out = run_local({p: functools.partial(secure_sum, values=np.ones(3, np.int64)) for p in tls}, transport="processes", tls=tls)
    np.testing.assert_array_equal(out["bank"].result, [2, 2, 2])


def test_fast_sender_waits_until_slow_peer_has_connected(pki: dict[str, TlsFiles]) -> None:
    """A party that only sends cannot finish and close before its peer has connected to it."""
    servers = {p: PartyServer(p, pki[p]) for p in ["bank", "partner"]}
    book = {p: s.address for p, s in servers.items()}
    partner = GrpcChannel("partner", book, "race", pki["partner"], server=servers["partner"])  # listening only
    errors: list[BaseException] = []

    def bank_job() -> None:
        try:
            with open_grpc_channel("bank", book, "race", pki["bank"], server=servers["bank"], connect_timeout_s=10) as ch:
                ch.send("partner", "only", 42)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    t = threading.Thread(target=bank_job)
    t.start()
    time.sleep(0.5)
    assert t.is_alive()  # reached partner, but waits for partner to reach it
    partner.connect(5)
    t.join(10)
    assert not errors
    assert partner.recv("bank", "only") == 42  # delivered before bank's bye
    partner.close()
    for s in servers.values():
        s.stop(0)


def test_one_way_reachability_is_reported_on_both_sides(pki: dict[str, TlsFiles]) -> None:
    servers = {p: PartyServer(p, pki[p]) for p in ["bank", "partner"]}
    good = {p: s.address for p, s in servers.items()}
    dead = f"127.0.0.1:{free_port()}"
    books = {"bank": good, "partner": {**good, "bank": dead}}  # partner has a wrong address for bank
    out: dict[str, BaseException | None] = {}

    def one(p: str) -> None:
        try:
            open_grpc_channel(p, books[p], "oneway", pki[p], server=servers[p], connect_timeout_s=1.0).close()
            out[p] = None
        except BaseException as exc:  # noqa: BLE001
            out[p] = exc

    threads = [threading.Thread(target=one, args=(p,)) for p in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in servers.values():
        s.stop(0)
    assert isinstance(out["partner"], PeerUnreachableError) and dead in str(out["partner"])
    assert isinstance(out["bank"], PeerUnreachableError)
    assert f"partner did not connect back to bank at {good['bank']}" in str(out["bank"])


def test_port_in_use_is_a_config_error(pki: dict[str, TlsFiles]) -> None:
    first = PartyServer("bank", pki["bank"])
    try:
        with pytest.raises(ConfigError, match=rf"bank cannot listen on {first.address}"):
            PartyServer("bank", pki["bank"], first.address)  # no silent SO_REUSEPORT sharing
    finally:
        first.stop(0)


def _claim_4_gib_send_1_mib(chan: Channel) -> str:
    assert isinstance(chan, GrpcChannel)
    head = encode_first_frame_head(FrameHeader(chan.job_id, chan.party, "huge", 0, 4 << 30))
    try:
        chan._send_frames("partner", "huge", [head, b"x" * (1 << 20)], single=False)
    except MalformedMessageError as exc:
        chan.send("partner", "done", True)
        return str(exc)
    return "accepted"


def _wait_done(chan: Channel) -> bool:
    return bool(chan.recv("bank", "done"))


def test_declared_size_costs_no_memory_until_the_bytes_arrive(pki: dict[str, TlsFiles]) -> None:
    out = run_local(
        {"bank": _claim_4_gib_send_1_mib, "partner": _wait_done}, transport="processes",
        tls={p: pki[p] for p in ["bank", "partner"]},
    )
    assert "the stream ended after 1048576 of 4294967296 bytes" in out["bank"].result
    assert out["partner"].max_rss_bytes < 300 << 20  # not 4 GiB
