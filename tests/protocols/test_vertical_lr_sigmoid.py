"""Vertical LR building blocks: the sigmoid of a shared score by oblivious segment lines, against its plaintext twin."""

from __future__ import annotations

import os

import numpy as np
import pytest

from misuan.errors import MalformedMessageError
from misuan.protocols.vertical_lr import u128
from misuan.protocols.vertical_lr.ring import encode, split
from misuan.protocols.vertical_lr.sigmoid_table import (
    SigmoidReceiver,
    SigmoidSender,
    TableShape,
    run_extension,
)


def _shared_sigmoid(z: np.ndarray, shape: TableShape) -> tuple[np.ndarray, np.ndarray]:
    a, b = split(encode(z, shape.score_bits))
    session = os.urandom(16)
    sender, receiver = SigmoidSender(a, shape, session), SigmoidReceiver(b, shape, session)
    run_extension(sender, receiver)
    entries, mine = sender.entries()
    total = u128.to_ints(u128.add(mine, receiver.receive(entries)))
    p = np.array([(v - u128.MOD if v >= u128.MOD // 2 else v) / 2.0**shape.p_bits for v in total])
    return p, entries


@pytest.mark.parametrize("shape", [TableShape(), TableShape(score_bits=18, grid_bits=2, index_bits=7, p_bits=18)])
def test_shares_add_up_to_the_sigmoid_within_the_lines_error(shape: TableShape) -> None:
    rng = np.random.default_rng(0)
    lim = shape.score_limit
    z = np.concatenate([np.clip(rng.normal(0, 3, 4000), -lim, lim), [0.0, -lim, lim - 1e-6, 1e-6]])
    p, _ = _shared_sigmoid(z, shape)
    want = 1 / (1 + np.exp(-z))
    h = 2.0**-shape.grid_bits
    bound = 0.0962 * h * h / 8 + 4 * 2.0**-shape.p_bits  # the line's error at worst, and rounding
    assert np.max(np.abs(p - want)) <= bound
    assert abs(np.mean(p - want)) < bound / 10  # least-squares lines: no bias over the segment


def test_the_receiver_gets_padded_words_only() -> None:
    shape = TableShape()
    z = np.zeros(2000)  # the same score everywhere: entries would repeat if masks were not fresh per row
    p, entries = _shared_sigmoid(z, shape)
    assert np.allclose(p, 0.5, atol=1e-3)
    assert len(np.unique(entries)) == entries.size
    assert abs(np.unpackbits(entries.view(np.uint8)).mean() - 0.5) < 0.002
    with pytest.raises(MalformedMessageError):
        SigmoidReceiver(np.zeros(3, np.uint64), shape, os.urandom(16)).receive(np.zeros((3, 4), np.uint64))
