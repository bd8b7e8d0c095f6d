"""KKRT-PSI (OT extension): against the plaintext twin and ECDH-PSI, what each side receives, its parts."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import misuan.protocols.kkrt.receiver as kkrt_receiver
from misuan.crypto.aes_prg import Keystreams, fixed_key_hash, prf
from misuan.crypto.bitmatrix import transpose
from misuan.crypto.ot import OtReceiver, OtSender
from misuan.crypto.rows import put_rows, take_rows
from misuan.errors import ConfigError, CryptoError, DuplicateIdError, MalformedMessageError
from misuan.net.channel import Channel
from misuan.net.local import run_local
from misuan.protocols.kkrt import receiver_of
from misuan.protocols.kkrt.cuckoo import candidate_bins, insert
from misuan.protocols.kkrt.digests import check_unique, digest_order, digests_of, encode_ids
from misuan.protocols.kkrt.messages import Columns, Hello, Matches, Outputs, ReceiverSetup, SenderSetup
from misuan.protocols.kkrt.params import n_bins_for, output_bytes
from misuan.protocols.kkrt.receiver import OprfReceiver
from misuan.protocols.kkrt.sender import OprfSender
from misuan.protocols.psi import IdNormalization, PsiParams, PsiResult, psi


def id_digests(values: list[bytes], key: bytes = bytes(16)) -> np.ndarray:
    return digests_of(encode_ids(values), key)


def _run(bank: list[str], partner: list[str], reveal: str = "both", protocol: str = "kkrt", **kw: Any) -> dict[str, Any]:
    params = PsiParams(reveal=reveal, protocol=protocol, **kw)  # type: ignore[arg-type]
    fns: dict[str, Callable[[Channel], PsiResult]] = {
        "bank": lambda c: psi(c, bank, "partner", params),
        "partner": lambda c: psi(c, partner, "bank", params),
    }
    return {p: o for p, o in run_local(fns, job_id="kkrt-test", transcripts=True).items()}


def _sets(n_bank: int, n_partner: int, shared: int, seed: int = 0, unicode: bool = False) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    stem = "客户-é-" if unicode else "C"
    pool = [f"{stem}{v:010d}" for v in rng.choice(10**10, size=n_bank + n_partner - shared, replace=False)]
    bank, partner = pool[:n_bank], pool[n_bank - shared :]
    rng.shuffle(bank)
    rng.shuffle(partner)
    return bank, partner


@pytest.mark.parametrize(
    ("n_bank", "n_partner", "shared", "unicode"),
    [(300, 200, 120, False), (0, 5, 0, False), (1, 1, 1, False), (40, 60, 0, True), (257, 257, 257, True), (500, 3, 3, False)],
)
def test_intersection_equals_the_plaintext_twin_and_ecdh(n_bank: int, n_partner: int, shared: int, unicode: bool) -> None:
    bank, partner = _sets(n_bank, n_partner, shared, unicode=unicode)
    out = _run(bank, partner)
    want = set(bank) & set(partner)
    b, p = out["bank"].result, out["partner"].result
    assert set(b.intersection) == want and b.size == len(want) == p.size
    assert b.intersection == p.intersection  # the same customers in the same order on both sides
    assert [bank[i] for i in b.local_rows] == b.intersection and [partner[i] for i in p.local_rows] == p.intersection
    ecdh = _run(bank, partner, protocol="ecdh")
    assert set(ecdh["bank"].result.intersection) == set(b.intersection)  # value for value


@pytest.mark.parametrize("learner", ["bank", "partner"])
def test_one_party_learns_and_the_other_learns_nothing(learner: str) -> None:
    bank, partner = _sets(120, 90, 40, seed=3)
    out = _run(bank, partner, reveal=learner)
    other = "partner" if learner == "bank" else "bank"
    assert out[learner].result.size == 40 and out[other].result.size is None and out[other].result.local_rows is None
    kinds = [(d.discloser, d.recipient, d.what) for d in out[other].disclosures if d.what.startswith("intersection")]
    assert kinds == [(other, learner, "intersection, by matching OPRF values (which of its IDs are in both sets)")]


def test_normalisation_applies_before_hashing() -> None:
    out = _run([" Alice", "BOB", "carol"], ["alice ", "bob", "dave"], normalize=IdNormalization(case="casefold"))
    assert sorted(out["bank"].result.intersection) == [" Alice", "BOB"]


def test_transcript_each_side_receives_only_masked_values_and_the_declared_sizes() -> None:
    bank, partner = _sets(200, 150, 70, seed=5)
    out = _run(bank, partner)
    receiver = receiver_of("both", ["bank", "partner"])
    assert receiver == "bank"
    to_sender = [(s, m) for _, s, m in out["partner"].transcript or []]
    to_receiver = [(s, m) for _, s, m in out["bank"].transcript or []]
    assert [s for s, _ in to_sender] == ["psi/hello", "psi/setup", "psi/columns", "psi/matches"]
    assert [s for s, _ in to_receiver] == ["psi/hello", "psi/setup", "psi/outputs"]
    hello = to_sender[0][1]
    assert isinstance(hello, Hello) and hello.n_rows == 200
    setup, cols = to_sender[1][1], to_sender[2][1]
    assert isinstance(setup, ReceiverSetup) and setup.n_bins == n_bins_for(200) and setup.bin_keys.shape == (3, 16)
    assert isinstance(cols, Columns) and cols.columns.shape == (512, setup.n_bins // 8)
    outputs = to_receiver[2][1]
    assert isinstance(to_receiver[1][1], SenderSetup)
    assert isinstance(outputs, Outputs) and outputs.values.shape == (150, 3, output_bytes(200, 150))
    matches = to_sender[3][1]
    assert isinstance(matches, Matches) and sorted(matches.positions.tolist()) == sorted(set(matches.positions.tolist()))
    # no ID nor its digest (keyed by both hellos' nonces) appears anywhere in what either side received
    key = hashlib.sha256(b"misuan-kkrt-digests" + bytes(hello.nonce) + bytes(to_receiver[0][1].nonce)).digest()[:16]
    digests = id_digests([x.encode() for x in bank + partner], key)
    blob = b"".join(np.ascontiguousarray(a).tobytes() for _, m in to_sender + to_receiver for a in vars(m).values() if isinstance(a, np.ndarray))
    assert not any(x.encode() in blob for x in bank + partner)
    assert not any(bytes(d[:12]) in blob for d in digests)
    # the sender's outputs come in a secret random order: the receiver's matched positions are not its rows
    rows = out["partner"].result.local_rows
    assert sorted(matches.positions.tolist()) != sorted(rows.tolist())


def test_a_failed_cuckoo_table_is_rebuilt_with_new_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    real = kkrt_receiver.insert

    def flaky(*args: Any, **kw: Any) -> Any:
        calls["n"] += 1
        return None if calls["n"] == 1 else real(*args, **kw)

    monkeypatch.setattr(kkrt_receiver, "insert", flaky)
    out = _run(*_sets(50, 50, 25, seed=7))
    assert calls["n"] == 2 and out["bank"].result.size == 25
    monkeypatch.setattr(kkrt_receiver, "insert", lambda *a, **k: None)
    with pytest.raises(CryptoError, match="cuckoo hashing of 50 IDs failed 8 times"):
        _run(*_sets(50, 50, 25, seed=7))


def test_large_sets_run_bucket_by_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    import misuan.protocols.kkrt as kkrt

    monkeypatch.setattr(kkrt, "BUCKET_ITEMS", 64)
    bank, partner = _sets(300, 200, 130, seed=11)
    out = _run(bank, partner)
    b, p = out["bank"].result, out["partner"].result
    assert set(b.intersection) == set(bank) & set(partner) and b.intersection == p.intersection
    tables = [d for d in out["bank"].disclosures if d.what == "cuckoo table size and hash keys"]
    # every bucket padded to the same public size: the table sizes tell nothing but the set size
    assert len(tables) == 5 and len({d.detail["n_bins"] for d in tables}) == 1
    assert kkrt.bucket_cap(300, 5) > 60 and kkrt.bucket_cap(300, 1) == 300


def test_id_encoding_is_injective_and_digests_depend_on_each_id_alone() -> None:
    ids = [b"a", b"a\x00", b"x" * 47, b"x" * 48, b"x" * 300, "é".encode()]
    enc = encode_ids(ids)
    assert len({bytes(row) for row in enc}) == len(ids)  # trailing NULs, 47/48 bytes, long IDs: all distinct
    assert enc[3, -1] == 255 and enc[2, -1] == 47  # a 48-byte ID is hashed, a 47-byte one written as it is
    assert np.array_equal(encode_ids(["ab", "é"]), encode_ids([b"ab", "é".encode()]))  # str: its UTF-8 bytes
    one = id_digests([b"alice"])
    assert np.array_equal(one[0], id_digests([b"alice", b"x" * 300])[0])  # the same whatever else is there
    assert not np.array_equal(one, id_digests([b"alice"], key=b"k" * 16))  # keyed per session
    with pytest.raises(DuplicateIdError, match="rows 0, 2 repeat"):
        check_unique(encode_ids([b"a", b"b", b"a"]))
    check_unique(encode_ids([b"a", b"a\x00"]))
    d = id_digests([f"{i}".encode() for i in range(1000)])
    w = d.view(">u8").reshape(-1, 2)
    assert np.array_equal(digest_order(d), np.lexsort((w[:, 1], w[:, 0])))


def test_row_gather_and_scatter_match_fancy_indexing() -> None:
    a = np.arange(60, dtype=np.uint8).reshape(6, 10)
    idx = np.array([5, 0, 3])
    assert np.array_equal(take_rows(a, idx), a[idx]) and np.array_equal(take_rows(a[:, :4], idx), a[idx, :4])
    b, c = a.copy(), a.copy()
    put_rows(b, idx, np.ones((3, 10), dtype=np.uint8))
    c[idx] = 1
    assert np.array_equal(b, c)


def test_coinciding_candidate_bins_give_distinct_values() -> None:
    # a sender ID whose hash functions pick the same bin must not repeat a value the receiver could spot
    from misuan.protocols.kkrt.receiver import tweaks

    same_bin = np.array([7, 7], dtype=np.int64)
    t = tweaks(b"s" * 16, same_bin, np.array([0, 1]))
    assert not np.array_equal(t[0], t[1])


def test_size_only_and_duplicates_are_refused() -> None:
    with pytest.raises(ConfigError, match="cannot reveal only the size"):
        _run(["a"], ["a"], reveal="size")
    with pytest.raises(DuplicateIdError, match="repeat an ID after normalisation"):
        _run(["a", "b", "a "], ["a"])


def test_malformed_peer_messages_are_refused() -> None:
    bank = id_digests([b"a", b"b", b"c"])
    r = OprfReceiver(bank, 2, 8)
    setup = r.setup()
    s = OprfSender(id_digests([b"a", b"z"]), 3, 8)
    with pytest.raises(MalformedMessageError, match="must have"):
        s.accept_receiver_setup(ReceiverSetup(setup.n_bins * 2, setup.bin_keys, setup.base_ot, setup.session))
    answer = s.accept_receiver_setup(setup)
    with pytest.raises(MalformedMessageError, match="base-OT points"):
        r.accept_sender_setup(SenderSetup(answer.code_keys, answer.base_ot[:10]))
    bad_point = answer.base_ot.copy()
    bad_point[0] = 0
    with pytest.raises(MalformedMessageError, match="not a valid Ed25519 group element"):
        r.accept_sender_setup(SenderSetup(answer.code_keys, bad_point))
    r.accept_sender_setup(answer)
    cols = r.columns(0, r.n_bins)
    with pytest.raises(MalformedMessageError, match="in order"):
        s.accept_columns(Columns(128, cols.columns))
    big = OprfReceiver(id_digests([f"{i}".encode() for i in range(300)]), 2, 8)
    lone = OprfSender(id_digests([b"a", b"z"]), 300, 8)
    lone.accept_receiver_setup(big.setup())
    with pytest.raises(MalformedMessageError, match="not in chunks of"):  # 128 of 384 bins: not a whole chunk
        lone.accept_columns(Columns(0, np.zeros((512, 16), dtype=np.uint8)))
    s.accept_columns(cols)
    with pytest.raises(MalformedMessageError, match="in order"):
        r.accept_outputs(Outputs(0, np.zeros((2, 3, 7), dtype=np.uint8)))
    with pytest.raises(MalformedMessageError, match="more OPRF outputs"):
        r.accept_outputs(Outputs(0, np.zeros((5, 3, 8), dtype=np.uint8)))
    with pytest.raises(MalformedMessageError, match="within the sender's IDs"):
        s.shared(np.array([7], dtype=np.int64))
    with pytest.raises(MalformedMessageError, match="repeat"):
        s.shared(np.array([1, 1], dtype=np.int64))


def test_base_ot_gives_the_receiver_exactly_its_chosen_keys() -> None:
    choices = [0, 1, 1, 0, 1]
    sender, receiver = OtSender(), OtReceiver(choices)
    pairs = sender.keys(receiver.points(sender.message))
    got = receiver.keys()
    assert all(k == pair[c] and k != pair[1 - c] for k, pair, c in zip(got, pairs, choices, strict=True))


def test_bit_matrix_transpose_and_aes_helpers() -> None:
    rng = np.random.default_rng(1)
    m = rng.integers(0, 256, size=(512, 40), dtype=np.uint8)
    assert np.array_equal(transpose(m), np.packbits(np.unpackbits(m, axis=1).T, axis=1))
    assert np.array_equal(transpose(transpose(m)), m)
    key = bytes(range(16))
    whole, chunked = Keystreams([key, key[::-1]]), Keystreams([key, key[::-1]])
    long = whole.next(64)
    assert np.array_equal(np.concatenate([chunked.next(16), chunked.next(48)], axis=1), long)  # one keystream
    blocks = rng.integers(0, 256, size=(4, 16), dtype=np.uint8)
    assert prf(key, blocks).shape == (4, 16) and not np.array_equal(prf(key, blocks), blocks)
    t = np.zeros((4, 16), dtype=np.uint8)
    h1 = fixed_key_hash(np.tile(blocks, (1, 2)), t)
    t[0, 0] = 1
    assert not np.array_equal(fixed_key_hash(np.tile(blocks, (1, 2)), t)[0], h1[0])  # the tweak matters


def test_cuckoo_places_every_item_in_one_of_its_bins() -> None:
    d = id_digests([f"x{i}".encode() for i in range(5000)])
    keys = [bytes([k]) * 16 for k in range(3)]
    bins = candidate_bins(d, keys, n_bins_for(5000))
    where = insert(bins, n_bins_for(5000), np.random.default_rng(0))
    assert where is not None and len(set(where.tolist())) == 5000
    assert all(where[i] in bins[i] for i in range(5000))
    assert n_bins_for(1) == 128 and 1.3 < n_bins_for(1 << 20) / (1 << 20) < 1.33
    assert output_bytes(10**6, 10**6) == 11 and output_bytes(1, 1) == 8


def test_many_chunks_of_columns_give_the_plaintext_intersection(monkeypatch: pytest.MonkeyPatch) -> None:
    import misuan.protocols.kkrt.sender as kkrt_sender

    for module in (kkrt_receiver, kkrt_sender):
        monkeypatch.setattr(module, "CHUNK_BINS", 128)  # 300 IDs: 384 bins, three chunks (the last one short)
    bank, partner = _sets(300, 200, 90, seed=21)
    out = _run(bank, partner)
    assert set(out["bank"].result.intersection) == set(bank) & set(partner)
    assert out["bank"].result.intersection == out["partner"].result.intersection


def test_own_values_sharing_their_first_bytes_are_all_tried() -> None:
    r = OprfReceiver(id_digests([b"a", b"b", b"c"]), 1, 10)
    r._sent = r.n_bins  # as once every chunk of columns is computed
    r._own_values[:] = 0
    r._own_values[1, 9], r._own_values[2, 9] = 1, 2  # three own values, the same first 8 bytes
    values = np.full((1, 3, 10), 0xFF, dtype=np.uint8)
    values[0, 1] = 0
    values[0, 1, 9] = 2  # the sender's value at its second bin equals own item 2, the last of the run
    assert r._match_chunk(values, 0).tolist() == [[0, 2]]
    with pytest.raises(RuntimeError, match="once every chunk"):
        OprfReceiver(id_digests([b"a"]), 1, 8)._match_chunk(values[:, :, :8], 0)
