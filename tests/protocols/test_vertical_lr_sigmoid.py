"""Vertical LR building blocks: the sigmoid of a shared score by OT table lookup, against its plaintext twin."""

from __future__ import annotations

import os

import numpy as np
import pytest

from misuan.errors import MalformedMessageError
from misuan.protocols.vertical_lr import u128
from misuan.protocols.vertical_lr.ring import decode, encode, split
from misuan.protocols.vertical_lr.sigmoid_table import (
    SigmoidReceiver,
    SigmoidSender,
    TableShape,
    lift,
    run_extension,
)


def _shared_sigmoid(z: np.ndarray, shape: TableShape) -> tuple[np.ndarray, SigmoidSender, np.ndarray]:
    a, b = split(encode(z, shape.score_bits))
    session = os.urandom(16)
    sender, receiver = SigmoidSender(a, shape, session), SigmoidReceiver(b, shape, session)
    run_extension(sender, receiver)
    entries, mine = sender.entries()
    return decode(mine + receiver.receive(entries), shape.p_bits), sender, entries


@pytest.mark.parametrize("shape", [TableShape(), TableShape(score_bits=16, grid_bits=5, index_bits=10, p_bits=16)])
def test_shares_add_up_to_the_sigmoid_within_the_grids_error(shape: TableShape) -> None:
    rng = np.random.default_rng(0)
    z = np.concatenate([rng.normal(0, 3, 5000), [0.0, -15.9, 15.9, 1e-6]])
    p, _, _ = _shared_sigmoid(z, shape)
    want = 1 / (1 + np.exp(-z))
    bound = 2.0 ** -(shape.grid_bits + 3) + 2.0**-shape.p_bits  # |dz| <= 2^-(g+1), sigma' <= 1/4
    assert np.max(np.abs(p - want)) <= bound
    assert abs(np.mean(p - want)) < bound / 20  # the midpoint makes the error centred


def test_lifted_shares_add_up_over_the_integers() -> None:
    shape = TableShape()
    z = np.random.default_rng(2).normal(0, 4, 3000)
    a, b = split(encode(z, shape.score_bits))
    session = os.urandom(16)
    sender, receiver = SigmoidSender(a, shape, session), SigmoidReceiver(b, shape, session)
    run_extension(sender, receiver)
    entries, mine = sender.entries()
    theirs = receiver.receive(entries)
    total = u128.to_ints(u128.add(lift(mine, True), lift(theirs, False)))
    want = u128.to_ints(u128.widen(mine + theirs, signed=False))  # p in [0, 2^20]: no sign to extend
    assert total == want
    assert max(total) <= 2**shape.p_bits


def test_the_receiver_gets_a_padded_entry_and_the_others_look_random() -> None:
    shape = TableShape()
    z = np.zeros(2000)  # the same score everywhere: entries would repeat if masks were not fresh per row
    p, sender, entries = _shared_sigmoid(z, shape)
    assert np.allclose(p, 0.5, atol=2.0**-7)
    assert len(np.unique(entries)) == entries.size
    bits = np.unpackbits(entries.view(np.uint8))
    assert abs(bits.mean() - 0.5) < 0.002
    with pytest.raises(MalformedMessageError):
        SigmoidReceiver(np.zeros(3, np.uint64), shape, os.urandom(16)).receive(np.zeros((3, 4), np.uint64))
