"""The PSI role object on its own: fixed messages in, messages out, no channel."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from misuan.crypto.ecdh import GROUP_NAME, hash_to_curve
from misuan.errors import ConfigError, MalformedMessageError, ProtocolError
from misuan.params import param_docs
from misuan.protocols.psi import (
    DIGEST_BYTES,
    PROTOCOL,
    BlindedBatch,
    DigestBatch,
    Hello,
    IdNormalization,
    PsiParams,
    PsiParty,
    PsiResult,
)

BANK = [f"C{i:04d}" for i in range(0, 30)]
PARTNER = [f"C{i:04d}" for i in range(18, 50)]


def _party(me: str, ids: list[str], reveal: str = "both", batch_size: int = 8) -> PsiParty:
    peer = "partner" if me == "bank" else "bank"
    return PsiParty(me, peer, ids, PsiParams(reveal=reveal, batch_size=batch_size, workers=1))


def _partner_hello(n_rows: int = 2, batch_size: int = 8, version: int = PROTOCOL.version) -> Hello:
    return Hello(version, GROUP_NAME, IdNormalization().canonical(), "both", n_rows, batch_size, DIGEST_BYTES)


def _by_hand(a: PsiParty, b: PsiParty) -> tuple[PsiResult, PsiResult]:
    """What two drivers and a channel would do, with the messages handed over directly."""
    a_hello, b_hello = a.hello(), b.hello()
    a.accept_hello(b_hello)
    b.accept_hello(a_hello)
    a.start()
    b.start()
    for sender, receiver in ((a, b), (b, a)):
        while sender.sending:
            receiver.accept_blinded(sender.next_blinded())
    replies = {}
    for p in (a, b):
        replies[p.party] = list(p.finished_digests(drain=True))
        p.end_of_stream()
        replies[p.party] += list(p.sorted_digests())
    for p, q in ((a, b), (b, a)):
        for msg in replies[q.party]:
            p.accept_digests(msg)
        assert not p.awaiting_digests
    try:
        return a.result(), b.result()
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("reveal", ["both", "size", "bank"])
def test_two_role_objects_find_the_intersection_without_a_channel(reveal: str) -> None:
    bank, partner = _by_hand(_party("bank", BANK, reveal), _party("partner", PARTNER, reveal, batch_size=5))
    shared = set(BANK) & set(PARTNER)
    assert bank.size == len(shared) == 12 and bank.peer_size == len(PARTNER)
    if reveal == "size":
        assert partner.size == 12 and bank.local_rows is None and partner.local_rows is None
        return
    assert bank.local_rows is not None and set(bank.intersection or []) == shared
    if reveal == "both":
        assert partner.local_rows is not None
        assert [BANK[i] for i in bank.local_rows] == [PARTNER[i] for i in partner.local_rows]
    else:
        assert partner.size is None and partner.intersection is None and partner.local_rows is None


def test_a_hello_of_another_version_is_refused_naming_both() -> None:
    bank = _party("bank", ["a", "b"])
    with pytest.raises(ProtocolError, match=rf"version {PROTOCOL.version + 1} .* we run {PROTOCOL.version} "):
        bank.accept_hello(_partner_hello(version=PROTOCOL.version + 1))


def test_a_hello_with_another_normalisation_or_mode_is_refused() -> None:
    bank = _party("bank", ["a", "b"])
    upper = IdNormalization(case="upper").canonical()
    with pytest.raises(ConfigError, match="normalisation differs"):
        bank.accept_hello(dataclasses.replace(_partner_hello(), normalization=upper))
    with pytest.raises(ConfigError, match="reveal differs"):
        bank.accept_hello(dataclasses.replace(_partner_hello(), reveal="size"))


def _started_bank() -> PsiParty:
    bank = _party("bank", ["a", "b", "c"])
    bank.accept_hello(_partner_hello(n_rows=2))
    bank.start()
    return bank


def _points(n: int) -> np.ndarray:
    return np.frombuffer(hash_to_curve([b"x%d" % i for i in range(n)]), dtype="S32")


@pytest.mark.parametrize(
    ("batch", "match"),
    [
        (BlindedBatch(1, _points(2)), "starts at 1"),
        (BlindedBatch(0, _points(3)), r"shape \(3,\)"),
        (BlindedBatch(0, np.zeros(2, dtype="S31")), "S31"),
        (BlindedBatch(0, np.arange(2, dtype=np.uint64)), "uint64"),
    ],
)
def test_a_malformed_blinded_batch_is_refused(batch: BlindedBatch, match: str) -> None:
    with pytest.raises(MalformedMessageError, match=match):
        _started_bank().accept_blinded(batch)


def test_a_point_off_the_curve_is_refused_when_its_digests_are_collected() -> None:
    bank = _started_bank()
    bank.accept_blinded(BlindedBatch(0, np.frombuffer(_points(1).tobytes() + bytes(32), dtype="S32")))
    with pytest.raises(MalformedMessageError, match="value #1"):
        list(bank.finished_digests(drain=True))


def test_more_batches_than_announced_and_unexpected_digests_are_refused() -> None:
    bank = _started_bank()
    bank.accept_blinded(BlindedBatch(0, _points(2)))
    with pytest.raises(MalformedMessageError, match="more blinded batches"):
        bank.accept_blinded(BlindedBatch(2, _points(2)))
    with pytest.raises(MalformedMessageError, match="doubly_blinded batch at 0"):
        bank.accept_digests(DigestBatch(0, np.zeros(2, dtype=f"S{DIGEST_BYTES}")))
    bank.accept_digests(DigestBatch(0, np.zeros(3, dtype=f"S{DIGEST_BYTES}")))
    with pytest.raises(MalformedMessageError, match="does not expect"):
        bank.accept_digests(DigestBatch(3, np.zeros(1, dtype=f"S{DIGEST_BYTES}")))


def test_a_reveal_naming_no_party_is_refused() -> None:
    with pytest.raises(ConfigError, match="reveal must be"):
        _party("bank", ["a"], reveal="telecom")


def test_psi_params_document_the_normalisation_as_a_nested_table() -> None:
    names = [row.name for row in param_docs([PsiParams])]
    assert names == [
        "reveal", "protocol", "normalize.strip", "normalize.case", "normalize.unicode", "normalize.kind",
        "normalize.country_code", "spill", "batch_size", "workers",
    ]
    assert PsiParams(normalize={"case": "casefold"}).normalize == IdNormalization(case="casefold")  # type: ignore[arg-type]
