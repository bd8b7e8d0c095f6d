"""Vertical LR building blocks: Gilboa products and share truncation against their plaintext twins."""

from __future__ import annotations

import os

import numpy as np
import pytest

from misuan.errors import MalformedMessageError
from misuan.protocols.vertical_lr import u128
from misuan.protocols.vertical_lr.products import MatrixSide, VectorSide, run_extension
from misuan.protocols.vertical_lr.ring import decode, encode, split, truncate


@pytest.mark.parametrize("shape", [(1, 5), (60, 60), (7, 1)])
def test_product_shares_add_up_to_m_times_x(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    m, x = rng.normal(size=shape), rng.normal(size=shape[1]) * 10
    session = os.urandom(16)
    mi, xi = np.rint(m * 2**40).astype(object), np.rint(x * 2**40).astype(object)
    # x split into two uniform-looking shares mod 2^128, M at the other side: M x_vector_side's share
    x_share = [int.from_bytes(os.urandom(16), "big") for _ in range(shape[1])]
    ms = MatrixSide(u128.from_ints(list(mi.reshape(-1))).reshape(shape[0], shape[1], 2), shape[1], session)
    vs = VectorSide(u128.from_ints(x_share), shape[0], session)
    run_extension(ms, vs)
    corrections, mine = ms.corrections()
    got = u128.to_ints(u128.add(mine, vs.share(corrections)))
    want = [sum(int(mi[i, j]) * x_share[j] for j in range(shape[1])) % u128.MOD for i in range(shape[0])]
    assert got == want
    del xi


def test_corrections_look_random_and_malformed_ones_are_refused() -> None:
    session = os.urandom(16)
    ms = MatrixSide(u128.from_ints([1] * 12).reshape(3, 4, 2), 4, session)
    vs = VectorSide(u128.from_ints([0] * 4), 3, session)
    run_extension(ms, vs)
    corrections, _ = ms.corrections()
    assert abs(np.unpackbits(corrections.view(np.uint8)).mean() - 0.5) < 0.02
    assert corrections.shape == (4 * 128, 3, 2)
    with pytest.raises(MalformedMessageError):
        vs.share(corrections[:10])


def test_truncation_of_shares_is_off_by_at_most_one_unit() -> None:
    # |x| * 2^32 < 2^36: a failure has probability ~2^-28 a value, ~1e-4 over these 20k
    x = np.random.default_rng(1).normal(size=20_000) * 3
    a, b = split(encode(x, 32))
    got = decode(truncate(a, 16, True) + truncate(b, 16, False), 16)
    assert np.max(np.abs(got - x)) <= 2 * 2.0**-16
