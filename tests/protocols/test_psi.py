from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import multiprocessing
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import misuan.protocols.psi.party as psi_party
from misuan.crypto.ecdh import POINT_BYTES, BlindingKey, find_invalid_point, hash_to_curve
from misuan.errors import (
    ConfigError,
    DataError,
    DuplicateIdError,
    EmptyIdError,
    MalformedMessageError,
    PeerDisconnectedError,
    UnexpectedMessageError,
)
from misuan.net.channel import Channel
from misuan.net.local import LocalOutcome, make_test_pki, run_local
from misuan.net.memory import MemoryNetwork
from misuan.protocols.psi import (
    DIGEST_BYTES,
    BlindedBatch,
    DigestBatch,
    Hello,
    IdNormalization,
    PsiParams,
    PsiResult,
    normalize_ids,
    psi,
)
from misuan.protocols.psi.blinding import CURVE_CHECK_SAMPLE, executor_for
from misuan.protocols.psi.matching import match_digests

PARTIES = ["bank", "partner"]


def run_psi(
    bank_ids: Any, partner_ids: Any, reveal: str = "both", progress: bool | None = None, **fields: Any
) -> tuple[dict[str, PsiResult], dict[str, LocalOutcome]]:
    params = PsiParams(**{"protocol": "ecdh", "reveal": reveal, **fields})
    fns: dict[str, Callable[[Channel], Any]] = {
        "bank": lambda c: psi(c, bank_ids, "partner", params, progress=progress),
        "partner": lambda c: psi(c, partner_ids, "bank", params, progress=progress),
    }
    outcomes = run_local(fns, job_id="psi-test")
    return {p: o.result for p, o in outcomes.items()}, outcomes


def random_sets(rng: np.random.Generator, n_bank: int, n_partner: int, shared: int) -> tuple[list[str], list[str]]:
    pool = [f"C{v:012d}" for v in rng.choice(10**12, size=n_bank + n_partner - shared, replace=False)]
    bank = pool[:n_bank]
    partner = pool[n_bank - shared :]
    rng.shuffle(bank)
    rng.shuffle(partner)
    return bank, partner


def assert_aligned(out: dict[str, PsiResult], bank: list[str], partner: list[str]) -> None:
    rows_b, rows_p = out["bank"].local_rows, out["partner"].local_rows
    assert rows_b is not None and rows_p is not None
    assert rows_b.dtype == np.int64 and rows_p.dtype == np.int64
    assert [bank[i] for i in rows_b] == [partner[i] for i in rows_p]  # same customers, same order
    assert out["bank"].intersection == [bank[i] for i in rows_b]
    assert out["partner"].intersection == [partner[i] for i in rows_p]


@pytest.mark.parametrize(
    ("n_bank", "n_partner", "shared", "batch_size"),
    [(200, 300, 120, 7), (500, 50, 50, 64), (1, 1, 1, 1), (40, 60, 0, 8), (333, 333, 333, 100)],
)
def test_intersection_equals_plaintext_twin(n_bank: int, n_partner: int, shared: int, batch_size: int) -> None:
    rng = np.random.default_rng(n_bank * 7 + shared)
    bank, partner = random_sets(rng, n_bank, n_partner, shared)
    out, _ = run_psi(bank, partner, batch_size=batch_size)
    expected = set(bank) & set(partner)
    assert out["bank"].size == out["partner"].size == len(expected) == shared
    assert set(out["bank"].intersection or []) == expected
    assert_aligned(out, bank, partner)
    assert out["bank"].peer_size == n_partner and out["partner"].peer_size == n_bank


def test_different_batch_sizes_on_each_side() -> None:
    bank, partner = random_sets(np.random.default_rng(3), 90, 70, 33)
    outcomes = run_local(
        {
            "bank": lambda c: psi(c, bank, "partner", PsiParams(protocol="ecdh", batch_size=5)),
            "partner": lambda c: psi(c, partner, "bank", PsiParams(protocol="ecdh", batch_size=32)),
        },
    )
    out = {p: o.result for p, o in outcomes.items()}
    assert out["bank"].size == 33
    assert_aligned(out, bank, partner)


def test_worker_processes_give_the_same_result() -> None:
    bank, partner = random_sets(np.random.default_rng(4), 3000, 2000, 1000)
    out, _ = run_psi(bank, partner, workers=2, batch_size=256)
    assert out["bank"].size == 1000
    assert set(out["bank"].intersection or []) == set(bank) & set(partner)
    assert_aligned(out, bank, partner)


def _entries(outcome: LocalOutcome) -> list[tuple[str, str, str, tuple[int, ...], str]]:
    return [(d.discloser, d.recipient, d.what, d.shape, d.form) for d in outcome.disclosures]


INTERSECTION = "intersection (which of its IDs are in both sets)"
BLINDED = "blinded IDs (under its key)"
DIGESTS_IN_ORDER = f"doubly-blinded ID digests ({DIGEST_BYTES} bytes, in the recipient's order)"
DIGESTS_SORTED = f"doubly-blinded ID digests ({DIGEST_BYTES} bytes, sorted, unlinkable to rows)"


def _common(me: str, peer: str, n_me: int, n_peer: int) -> list[tuple[str, str, str, tuple[int, ...], str]]:
    return [
        (me, peer, "ID set size", (), "plaintext"),
        (peer, me, "ID set size", (), "plaintext"),
        (me, peer, BLINDED, (n_me,), "blinded"),
        (peer, me, BLINDED, (n_peer,), "blinded"),
    ]


def test_reveal_both_results_and_ledger() -> None:
    bank, partner = random_sets(np.random.default_rng(5), 50, 40, 10)
    out, ch = run_psi(bank, partner, reveal="both")
    assert out["bank"].size == out["partner"].size == 10
    assert_aligned(out, bank, partner)
    assert _entries(ch["bank"]) == _common("bank", "partner", 50, 40) + [
        ("bank", "partner", DIGESTS_IN_ORDER, (40,), "blinded"),
        ("partner", "bank", DIGESTS_IN_ORDER, (50,), "blinded"),
        ("partner", "bank", INTERSECTION, (), "plaintext"),
        ("bank", "partner", INTERSECTION, (), "plaintext"),
    ]
    assert _entries(ch["partner"]) == _common("partner", "bank", 40, 50) + [
        ("partner", "bank", DIGESTS_IN_ORDER, (50,), "blinded"),
        ("bank", "partner", DIGESTS_IN_ORDER, (40,), "blinded"),
        ("bank", "partner", INTERSECTION, (), "plaintext"),
        ("partner", "bank", INTERSECTION, (), "plaintext"),
    ]
    sizes = [d.detail for d in ch["bank"].disclosures if d.what == "ID set size"]
    assert sizes == [{"n": 50}, {"n": 40}]


def test_reveal_size_only_and_ledger() -> None:
    bank, partner = random_sets(np.random.default_rng(6), 60, 80, 25)
    out, ch = run_psi(bank, partner, reveal="size")
    for p in PARTIES:
        assert out[p].size == 25
        assert out[p].intersection is None and out[p].local_rows is None
    assert _entries(ch["bank"]) == _common("bank", "partner", 60, 80) + [
        ("bank", "partner", DIGESTS_SORTED, (80,), "blinded"),
        ("partner", "bank", DIGESTS_SORTED, (60,), "blinded"),
        ("partner", "bank", "intersection size", (), "plaintext"),
        ("bank", "partner", "intersection size", (), "plaintext"),
    ]


def test_reveal_size_returns_digests_sorted_so_rows_cannot_be_linked() -> None:
    bank, partner = random_sets(np.random.default_rng(7), 64, 64, 30)
    channels = run_local(
        {
            "bank": lambda c: psi(c, bank, "partner", PsiParams(protocol="ecdh", reveal="size", batch_size=16)),
            "partner": lambda c: psi(c, partner, "bank", PsiParams(protocol="ecdh", reveal="size", batch_size=16)),
        },
        transcripts=True,
    )
    transcript = channels["bank"].transcript or []
    digests = np.concatenate([m.digests for _, s, m in transcript if s == "psi/doubly_blinded"])
    assert digests.shape == (64,) and (digests[1:] > digests[:-1]).all()


@pytest.mark.parametrize("receiver", PARTIES)
def test_reveal_to_one_party_only(receiver: str) -> None:
    bank, partner = random_sets(np.random.default_rng(8), 45, 55, 20)
    ids = {"bank": bank, "partner": partner}
    other = "partner" if receiver == "bank" else "bank"
    channels = run_local(
        {
            "bank": lambda c: psi(c, bank, "partner", PsiParams(protocol="ecdh", reveal=receiver)),
            "partner": lambda c: psi(c, partner, "bank", PsiParams(protocol="ecdh", reveal=receiver)),
        },
        transcripts=True,
    )
    out = {p: o.result for p, o in channels.items()}
    assert out[receiver].size == 20
    assert set(out[receiver].intersection or []) == set(bank) & set(partner)
    rows = out[receiver].local_rows
    assert rows is not None and [ids[receiver][i] for i in rows] == out[receiver].intersection
    assert out[other] == PsiResult(None, None, None, len(ids[receiver]), out[other].timings, out[other].x25519)
    assert out[other].x25519 in ("crypto_mb", "openssl")
    # the non-receiver gets no digests back: it learns the receiver's set size and blinded values only
    assert {s for _, s, _ in channels[other].transcript or []} == {"psi/hello", "psi/blinded"}
    n_r, n_o = len(ids[receiver]), len(ids[other])
    assert _entries(channels[receiver]) == _common(receiver, other, n_r, n_o) + [
        (other, receiver, DIGESTS_IN_ORDER, (n_r,), "blinded"),
        (other, receiver, INTERSECTION, (), "plaintext"),
    ]
    assert _entries(channels[other]) == _common(other, receiver, n_o, n_r) + [
        (other, receiver, DIGESTS_IN_ORDER, (n_r,), "blinded"),
        (other, receiver, INTERSECTION, (), "plaintext"),
    ]


def test_transcript_partner_receives_only_blinded_points() -> None:
    """The partner sees the bank's set size, then blinded points and digests: never IDs or H(id)."""
    bank, partner = random_sets(np.random.default_rng(9), 150, 120, 60)
    channels = run_local(
        {
            "bank": lambda c: psi(c, bank, "partner", PsiParams(protocol="ecdh", batch_size=50)),
            "partner": lambda c: psi(c, partner, "bank", PsiParams(protocol="ecdh", batch_size=50)),
        },
        transcripts=True,
    )
    transcript = channels["partner"].transcript or []
    assert all(frm == "bank" for frm, _, _ in transcript)
    steps = [s for _, s, _ in transcript]
    assert steps == ["psi/hello"] + ["psi/blinded"] * 3 + ["psi/doubly_blinded"] * 3
    hello = transcript[0][2]
    assert isinstance(hello, Hello) and hello.n_rows == 150
    blinded = [m for _, s, m in transcript if s == "psi/blinded"]
    assert all(isinstance(m, BlindedBatch) and m.points.dtype == np.dtype("S32") for m in blinded)
    points = b"".join(m.points.tobytes() for m in blinded)
    assert len(points) == 150 * POINT_BYTES and find_invalid_point(points) == -1
    received = {points[i : i + POINT_BYTES] for i in range(0, len(points), POINT_BYTES)}
    assert len(received) == 150
    # none of them is the unblinded hash H(id) of any bank ID (nor of any partner ID)
    hashed = hash_to_curve(normalize_ids(bank + partner, IdNormalization()))
    assert not received & {hashed[i : i + POINT_BYTES] for i in range(0, len(hashed), POINT_BYTES)}
    # nor any ID, plain or SHA-256'd, anywhere in the bytes received
    blob = points + b"".join(m.digests.tobytes() for _, s, m in transcript if s == "psi/doubly_blinded")
    assert not any(i.encode() in blob or hashlib.sha256(i.encode()).digest()[:8] in blob for i in bank)
    digests = [m for _, s, m in transcript if s == "psi/doubly_blinded"]
    assert all(isinstance(m, DigestBatch) and m.digests.dtype == np.dtype(f"S{DIGEST_BYTES}") for m in digests)
    assert sum(m.digests.shape[0] for m in digests) == 120  # digests of the partner's own values only
    # the bank streams its rows in a secret random order, not in row order
    assert [m.start for m in blinded] == [0, 50, 100]


def test_random_row_order_hides_the_peers_row_positions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Which positions of the bank's stream match must not reveal which bank *rows* match.

    The shared customers are the bank's first 100 of 200 rows. With the partner's key (captured
    here) we compute what the partner can: which stream positions of the bank match its own IDs.
    """
    keys: dict[str, BlindingKey] = {}

    class RecordedKey(BlindingKey):
        def __init__(self, secret: bytes | None = None) -> None:
            super().__init__(secret)
            if secret is None:  # the party's fresh key (tasks rebuild it from its bytes)
                keys[threading.current_thread().name] = self

    monkeypatch.setattr(psi_party, "BlindingKey", RecordedKey)
    bank = [f"id{i}" for i in range(200)]
    partner = bank[:100]
    channels = run_local(
        {"bank": lambda c: psi(c, bank, "partner", PsiParams(protocol="ecdh")),
         "partner": lambda c: psi(c, partner, "bank", PsiParams(protocol="ecdh"))}, transcripts=True
    )
    transcript = channels["partner"].transcript or []
    stream = b"".join(m.points.tobytes() for _, s, m in transcript if s == "psi/blinded")
    own_digests = {m.digests[i : i + 1].tobytes() for _, s, m in transcript if s == "psi/doubly_blinded" for i in range(len(m.digests))}
    theirs = keys["party-partner"].blind(stream, truncate=DIGEST_BYTES)
    matched = [i for i in range(200) if theirs[i * DIGEST_BYTES : (i + 1) * DIGEST_BYTES] in own_digests]
    assert len(matched) == 100
    assert sum(i >= 100 for i in matched) > 25  # in row order they would all be < 100


def test_normalisation_mismatch_is_refused_by_both() -> None:
    errors: dict[str, BaseException] = {}

    def party(c: Channel, ids: list[str], peer: str, norm: IdNormalization) -> None:
        try:
            psi(c, ids, peer, PsiParams(protocol="ecdh", normalize=norm))
        except ConfigError as exc:
            errors[c.party] = exc

    run_local(
        {
            "bank": lambda c: party(c, ["a"], "partner", IdNormalization(case="casefold")),
            "partner": lambda c: party(c, ["a"], "bank", IdNormalization()),
        },
    )
    assert set(errors) == {"bank", "partner"}
    assert "normalisation differs" in str(errors["bank"]) and "casefold" in str(errors["bank"])


def test_reveal_mismatch_is_refused() -> None:
    with pytest.raises(ConfigError, match="reveal differs"):
        run_local(
            {
                "bank": lambda c: psi(c, ["a"], "partner", PsiParams(protocol="ecdh", reveal="both")),
                "partner": lambda c: psi(c, ["a"], "bank", PsiParams(protocol="ecdh", reveal="size")),
            },
        )


def test_bad_arguments_are_config_errors() -> None:
    chan = MemoryNetwork(PARTIES).channel("bank")
    with pytest.raises(ConfigError, match="not a peer"):
        psi(chan, ["a"], "telecom")
    with pytest.raises(ConfigError, match="reveal must be"):
        psi(chan, ["a"], "partner", PsiParams(protocol="ecdh", reveal="everyone"))
    with pytest.raises(ConfigError, match="batch_size"):
        psi(chan, ["a"], "partner", PsiParams(protocol="ecdh", batch_size=0))


def _fake_partner(send: Callable[[Channel], object], n_rows: int = 2, batch_size: int = 8) -> Callable[[Channel], None]:
    """A partner that says hello like an honest one, then sends whatever ``send`` sends."""

    def run(c: Channel) -> None:
        theirs = c.recv("bank", "psi/hello", expect=Hello)
        hello = Hello(theirs.version, theirs.group, theirs.normalization, "both", n_rows, batch_size, DIGEST_BYTES)
        c.send("bank", "psi/hello", hello)
        send(c)

    return run


def _bank_against(fake: Callable[[Channel], object]) -> None:
    run_local({"bank": lambda c: psi(c, ["a", "b", "c"], "partner", PsiParams(protocol="ecdh")), "partner": _fake_partner(fake)}, timeout_s=20)


def _valid_points(n: int) -> np.ndarray:
    return np.frombuffer(hash_to_curve([b"x%d" % i for i in range(n)]), dtype="S32")


@pytest.mark.parametrize(
    ("batch", "match"),
    [
        (BlindedBatch(0, np.zeros(2, dtype="S31")), "31-byte|S31"),  # wrong point length
        (BlindedBatch(0, _valid_points(3)), r"shape \(3,\)"),  # more points than announced
        (BlindedBatch(1, _valid_points(2)), "starts at 1"),
        (BlindedBatch(0, np.zeros((2, 2), dtype="S32")), r"shape \(2, 2\)"),
        (BlindedBatch(0, np.arange(2, dtype=np.uint64)), "uint64"),
    ],
)
def test_malformed_blinded_batch_is_refused(batch: BlindedBatch, match: str) -> None:
    with pytest.raises(MalformedMessageError, match=match):
        _bank_against(lambda c: c.send("bank", "psi/blinded", batch))


def _u(value: int) -> bytes:
    return value.to_bytes(32, "little")


@pytest.mark.parametrize(
    "bad",
    [
        _u((1 << 255) - 19),  # not canonical (= p)
        _u((1 << 255) - 1),  # not canonical
        _u(0),  # order-2 point (0, 0)
        _u(1),  # order-4 point: blinded it is the identity
        # a u-coordinate on the twist, not on the curve (found by the hash's own test)
        next(_u(u) for u in range(2, 100) if find_invalid_point(_u(u)) == 0),
    ],
)
def test_invalid_point_is_refused(bad: bytes) -> None:
    good = _valid_points(1).tobytes()
    points = np.frombuffer(good + bad, dtype="S32")
    with pytest.raises(MalformedMessageError, match="value #1"):
        _bank_against(lambda c: c.send("bank", "psi/blinded", BlindedBatch(0, points)))


def test_a_batch_of_twist_points_is_refused_by_the_sampled_curve_check() -> None:
    """Batches above CURVE_CHECK_SAMPLE values get the on-curve test on a random sample: all-twist fails it."""
    n = 3 * CURVE_CHECK_SAMPLE
    twist = [u for u in range(2, 1000) if find_invalid_point(_u(u)) == 0][:n]
    points = np.frombuffer(b"".join(_u(u) for u in twist), dtype="S32")
    fake = _fake_partner(lambda c: c.send("bank", "psi/blinded", BlindedBatch(0, points)), n_rows=n, batch_size=n)
    with pytest.raises(MalformedMessageError, match="not a canonical curve point"):
        run_local({"bank": lambda c: psi(c, ["a", "b", "c"], "partner", PsiParams(protocol="ecdh")), "partner": fake}, timeout_s=20)


def test_malformed_digest_batch_is_refused() -> None:
    def fake(c: Channel) -> None:
        c.send("bank", "psi/blinded", BlindedBatch(0, _valid_points(2)))
        c.send("bank", "psi/doubly_blinded", DigestBatch(0, np.zeros(3, dtype="S8")))

    with pytest.raises(MalformedMessageError, match="doubly_blinded"):
        _bank_against(fake)


def test_repeated_digests_from_peer_are_refused() -> None:
    def fake(c: Channel) -> None:
        c.send("bank", "psi/blinded", BlindedBatch(0, _valid_points(2)))
        c.send("bank", "psi/doubly_blinded", DigestBatch(0, np.array([b"d" * 16] * 3, dtype="S16")))

    with pytest.raises(MalformedMessageError, match="repeat"):
        _bank_against(fake)


def test_wrong_message_type_is_refused() -> None:
    with pytest.raises(UnexpectedMessageError):
        _bank_against(lambda c: c.send("bank", "psi/blinded", DigestBatch(0, np.zeros(2, dtype="S16"))))


def test_duplicate_ids_are_named() -> None:
    with pytest.raises(DuplicateIdError, match=r"rows 1 \('b'\), 3 \('b'\)"):
        run_psi(["a", "b", "c", "b"], ["a"])


def test_duplicates_after_normalisation_are_named() -> None:
    with pytest.raises(DuplicateIdError, match=r"rows 0 \(' A'\), 2 \('a '\)"):
        run_psi([" A", "b", "a "], ["a"], normalize=IdNormalization(case="casefold"))


@pytest.mark.parametrize(
    ("ids", "error", "match"),
    [
        (["a", "", "c"], EmptyIdError, "row 1"),
        (["a", "   ", "c"], EmptyIdError, "row 1"),
        (["a", None, "c"], EmptyIdError, "row 1"),
        (["a", float("nan")], EmptyIdError, "row 1"),
        (pd.Series(["a", "b", None], dtype="string"), EmptyIdError, "row 2"),
        (["a", 2, 3.5], DataError, r"rows 1 \(2\), 2 \(3.5\)"),
        (["a", b"b"], DataError, "bytes"),
    ],
)
def test_empty_and_mixed_ids_are_named(ids: list[Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        run_psi(ids, ["a"])


def test_integer_ids_are_written_in_decimal() -> None:
    out, _ = run_psi(np.array([5, 17, 300], dtype=np.int64), ["17", "300", "4"])
    assert set(out["bank"].intersection or []) == {"17", "300"}


def test_unicode_ids_match_across_normal_forms() -> None:
    bank = ["张三-0001", "Zoe\u0308", "ｆｕｌｌ", "Ω", "😀"]
    partner = ["Zo\u00eb", "full", "张三-0001", "李四", " 😀 "]
    out, _ = run_psi(bank, partner)  # default: NFKC + strip
    assert set(out["bank"].intersection or []) == {"张三-0001", "Zoe\u0308", "ｆｕｌｌ", "😀"}
    assert_aligned_by_normal_form(out, bank, partner)
    out_none, _ = run_psi(bank, partner, normalize=IdNormalization(unicode="none", strip=False))
    assert out_none["bank"].intersection == ["张三-0001"]


def assert_aligned_by_normal_form(out: dict[str, PsiResult], bank: list[str], partner: list[str]) -> None:
    norm = IdNormalization()
    rows_b, rows_p = out["bank"].local_rows, out["partner"].local_rows
    assert rows_b is not None and rows_p is not None
    assert [norm.apply(bank[i]) for i in rows_b] == [norm.apply(partner[i]) for i in rows_p]


@pytest.mark.parametrize(("n_bank", "n_partner"), [(0, 0), (0, 5), (5, 0)])
@pytest.mark.parametrize("reveal", ["both", "size", "bank"])
def test_empty_sets(n_bank: int, n_partner: int, reveal: str) -> None:
    out, _ = run_psi([f"x{i}" for i in range(n_bank)], [f"x{i}" for i in range(n_partner)], reveal=reveal)
    assert out["bank"].size == 0
    if reveal != "size":
        assert out["bank"].intersection == [] and out["bank"].local_rows is not None
        assert out["bank"].local_rows.shape == (0,)


def test_phone_normalisation() -> None:
    norm = IdNormalization(kind="phone")
    forms = ["138 0013 8000", "+86 138-0013-8000", "008613800138000", "(138) 0013.8000", "013800138000"]
    assert {norm.apply(f) for f in forms} == {"+8613800138000"}
    assert norm.apply("+1 (415) 555-0100") == "+14155550100"
    assert norm.apply("call me") is None
    assert norm.apply(" - ") == ""
    out, _ = run_psi(["138 0013 8000", "+1 415 555 0100"], ["+8613800138000", "99"], normalize=norm)
    assert out["bank"].intersection == ["138 0013 8000"]
    with pytest.raises(DataError, match="not valid phone values at row 1"):
        run_psi(["13800138000", "n/a"], ["1"], normalize=norm)


def test_cn_id_normalisation() -> None:
    norm = IdNormalization(kind="cn_id")
    assert norm.apply("11010519491231002x") == "11010519491231002X"
    assert norm.apply(" 110105 19491231 002X ") == "11010519491231002X"
    assert norm.apply("110105194912310021") is None  # wrong check character
    assert norm.apply("110105491231002") is None  # 15-digit legacy number
    with pytest.raises(ConfigError):
        IdNormalization(kind="passport")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        IdNormalization(country_code="+86")


def test_matching_paths_agree_even_with_repeated_prefixes() -> None:
    """Digests sharing their first 8 bytes take the exact path; the result and order are the same."""
    rng = np.random.default_rng(11)
    own = np.frombuffer(rng.bytes(16 * 300), dtype="S16").copy()
    theirs = np.concatenate([own[100:250], np.frombuffer(rng.bytes(16 * 200), dtype="S16")])
    fast = match_digests(own, theirs, "partner")
    assert fast.size == 150 and set(fast.tolist()) == set(range(100, 250))
    assert list(own[fast]) == sorted(own[fast])  # sorted by digest value
    # a peer digest equal to an own one in the first 8 bytes only must not match
    twin = bytearray(own[0:1].tobytes())
    twin[15] ^= 1
    theirs2 = np.concatenate([theirs, np.frombuffer(bytes(twin), dtype="S16")])
    collided = match_digests(own, theirs2, "partner")  # fast path, full digests compared
    assert collided.tolist() == fast.tolist()
    own2 = np.concatenate([own, np.frombuffer(bytes(twin), dtype="S16")])  # repeated prefix: exact path
    assert match_digests(own2, theirs, "partner").tolist() == fast.tolist()


def test_progress_bar_goes_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    run_psi(["a", "b"], ["b"], progress=True)
    captured = capsys.readouterr()
    assert "PSI bank" in captured.err and "PSI partner" in captured.err and captured.out == ""
    run_psi(["a", "b"], ["b"], progress=False)
    assert capsys.readouterr().err == ""


def test_daemonic_process_falls_back_to_worker_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """multiprocessing forbids children of a daemonic process; PSI then uses threads."""

    class Daemonic:
        daemon = True

    monkeypatch.setattr(multiprocessing, "current_process", lambda: Daemonic())
    assert isinstance(executor_for(2), concurrent.futures.ThreadPoolExecutor)
    bank, partner = random_sets(np.random.default_rng(12), 300, 200, 100)
    out, _ = run_psi(bank, partner, workers=2, batch_size=32)
    assert out["bank"].size == 100
    assert_aligned(out, bank, partner)


@pytest.mark.parametrize(("n_rows", "batch_size"), [(1 << 33, 1), (5, 1 << 21), (1 << 40, 8), (-1, 8)])
def test_peer_announced_sizes_allocate_nothing(n_rows: int, batch_size: int) -> None:
    """A hello claiming billions of rows costs nothing until rows arrive; absurd claims are refused."""

    def liar(c: Channel) -> None:
        theirs = c.recv("bank", "psi/hello", expect=Hello)
        c.send("bank", "psi/hello", Hello(theirs.version, theirs.group, theirs.normalization, "both", n_rows, batch_size, DIGEST_BYTES))
        c.close()

    expected: type[Exception] = PeerDisconnectedError if n_rows == 1 << 33 else MalformedMessageError
    with pytest.raises(expected):
        run_local({"bank": lambda c: psi(c, ["a", "b"], "partner", PsiParams(protocol="ecdh")), "partner": liar}, timeout_s=20)


def _psi_party(chan: Channel, ids: list[str], peer: str, reveal: str) -> dict[str, Any]:
    res = psi(chan, ids, peer, PsiParams(protocol="ecdh", reveal=reveal, batch_size=64))
    return {"size": res.size, "intersection": res.intersection, "rows": res.local_rows}


@pytest.mark.parametrize("reveal", ["both", "partner"])
def test_psi_over_grpc_in_two_processes_matches_the_in_memory_run(tmp_path: Path, reveal: str) -> None:
    bank, partner = random_sets(np.random.default_rng(13), 300, 250, 120)
    ids = {"bank": bank, "partner": partner}
    peers = {"bank": "partner", "partner": "bank"}
    out = run_local(
        {p: functools.partial(_psi_party, ids=ids[p], peer=peers[p], reveal=reveal) for p in PARTIES},
        transport="processes",
        tls=make_test_pki(tmp_path, PARTIES),
        job_id="psi-grpc",
    )
    mem, mem_channels = run_psi(bank, partner, reveal=reveal, batch_size=64)
    for p in PARTIES:
        result = out[p].result
        assert result["size"] == mem[p].size
        if mem[p].local_rows is None:
            assert result["rows"] is None and result["intersection"] is None
        else:
            assert set(result["intersection"]) == set(bank) & set(partner)
            assert [ids[p][i] for i in result["rows"]] == result["intersection"]
        view = [(d.discloser, d.recipient, d.what, d.shape, d.form) for d in out[p].disclosures]
        assert view == _entries(mem_channels[p])
    if reveal == "both":
        assert out["bank"].result["intersection"] == [partner[i] for i in out["partner"].result["rows"]]
