"""IKNP OT extension: the receiver holds the sender's key exactly where it chose 1; the columns hide its choices."""

from __future__ import annotations

import os

import numpy as np
import pytest

from misuan.crypto.ot_extension import BASE_OTS, CHUNK_OTS, ExtensionReceiver, ExtensionSender, chunks_of
from misuan.errors import MalformedMessageError


def _extend(choices: np.ndarray) -> tuple[ExtensionReceiver, ExtensionSender, list[np.ndarray]]:
    session = os.urandom(16)
    r, s = ExtensionReceiver(choices, session), ExtensionSender(len(choices), session)
    r.accept_base_points(s.base_points(r.base_message))
    sent = []
    for a, b in chunks_of(len(choices)):
        u = r.columns(a, b)
        sent.append(u)
        s.accept_columns(a, u)
    assert r.complete and s.complete
    return r, s, sent


@pytest.mark.parametrize("n", [0, 1, 127, 129, CHUNK_OTS + 300])
def test_keys_agree_exactly_at_the_chosen_positions(n: int) -> None:
    choices = (np.random.default_rng(n).random(n) < 0.7).astype(np.uint8)
    r, s, _ = _extend(choices)
    same = np.all(r.keys[:n] == s.keys[:n], axis=1)
    assert np.array_equal(same, choices.astype(bool))
    assert len({bytes(k) for k in s.keys[:n]}) == n  # every key distinct (fresh per OT)


def test_columns_look_uniform_whatever_the_choices() -> None:
    n = 200_000
    for p_one in (0.0, 0.97, 1.0):  # all zeros, a one-hot complement (SecureBoost's bins), all ones
        choices = (np.random.default_rng(1).random(n) < p_one).astype(np.uint8)
        _, _, sent = _extend(choices)
        bits = np.unpackbits(np.concatenate([u.reshape(-1) for u in sent]))
        assert abs(bits.mean() - 0.5) < 0.002, p_one  # what the sender sees does not lean towards the choices


def test_malformed_columns_are_refused() -> None:
    session = os.urandom(16)
    n = CHUNK_OTS + 10
    r, s = ExtensionReceiver(np.ones(n, np.uint8), session), ExtensionSender(n, session)
    with pytest.raises(RuntimeError, match="base_points comes first"):
        s.accept_columns(0, np.zeros((BASE_OTS, CHUNK_OTS // 8), np.uint8))
    r.accept_base_points(s.base_points(r.base_message))
    (a0, b0), (a1, b1) = chunks_of(n)
    with pytest.raises(MalformedMessageError, match="chunk after chunk"):
        s.accept_columns(a1, r.columns(a0, b0))
    with pytest.raises(MalformedMessageError, match="must be uint8"):
        s.accept_columns(a0, np.zeros((BASE_OTS, 3), np.uint8))
    with pytest.raises(MalformedMessageError, match="128 base-OT points"):
        ExtensionReceiver(np.ones(4, np.uint8), session).accept_base_points([b"x" * 32])
    with pytest.raises(ValueError, match="0s and 1s"):
        ExtensionReceiver(np.array([2], np.uint8), session)
    with pytest.raises(MalformedMessageError, match="16 bytes"):
        ExtensionSender(4, b"short")


def test_a_sender_with_both_keys_holds_the_receivers_key_at_either_choice() -> None:
    n = 1000
    choices = (np.random.default_rng(5).random(n) < 0.5).astype(np.uint8)
    session = os.urandom(16)
    r, s = ExtensionReceiver(choices, session), ExtensionSender(n, session, both_keys=True)
    r.accept_base_points(s.base_points(r.base_message))
    for a, b in chunks_of(n):
        s.accept_columns(a, r.columns(a, b))
    chosen = np.where(choices[:, None] == 1, s.keys[:n], s.keys0[:n])
    other = np.where(choices[:, None] == 1, s.keys0[:n], s.keys[:n])
    assert np.array_equal(r.keys[:n], chosen)
    assert not np.any(np.all(r.keys[:n] == other, axis=1))


def test_extensions_that_continue_a_base_agree_and_draw_fresh_keystream() -> None:
    """Later extensions continue the first one's base OTs: still correct, and their columns are masked
    by keystream bytes never used before (the same choices give different columns)."""
    choices = (np.random.default_rng(3).random(5000) < 0.5).astype(np.uint8)
    r, s, first = _extend(choices)
    receiver_base, sender_base = r.base, s.base
    for _ in range(2):
        session = os.urandom(16)
        r2, s2 = ExtensionReceiver(choices, session), ExtensionSender(len(choices), session, both_keys=True)
        r2.continue_from(receiver_base)
        s2.continue_from(sender_base)
        u = r2.columns(0, chunks_of(len(choices))[0][1])
        assert not np.array_equal(u, first[0])  # fresh keystream: no column mask is used twice
        s2.accept_columns(0, u)
        n = len(choices)
        assert np.array_equal(np.all(r2.keys[:n] == s2.keys[:n], axis=1), choices.astype(bool))
        assert np.array_equal(np.all(r2.keys[:n] == s2.keys0[:n], axis=1), ~choices.astype(bool))
        assert not np.any(np.all(s2.keys[:n] == s.keys[:n], axis=1))  # new session: keys unrelated to the first's
    r3 = ExtensionReceiver(choices, os.urandom(16))
    r3.continue_from(receiver_base)
    with pytest.raises(RuntimeError, match="not both"):
        r3.accept_base_points([b"x" * 32] * BASE_OTS)
    s3 = ExtensionSender(10, os.urandom(16))
    s3.continue_from(sender_base)
    with pytest.raises(RuntimeError, match="not both"):
        s3.base_points(b"x" * 32)
