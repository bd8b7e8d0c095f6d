"""Vertical LR building blocks: Gilboa products and share truncation against their plaintext twins."""

from __future__ import annotations

import os

import numpy as np
import pytest

from misuan.errors import MalformedMessageError
from misuan.protocols.vertical_lr.products import MatrixSide, VectorSide, run_extension
from misuan.protocols.vertical_lr.ring import decode, encode, split, truncate


@pytest.mark.parametrize("shape", [(1, 5), (200, 200), (7, 1)])
def test_product_shares_add_up_to_m_times_x(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    m, x = rng.normal(size=shape), rng.normal(size=shape[1]) * 10
    session = os.urandom(16)
    ms, vs = MatrixSide(encode(m, 16), shape[1], session), VectorSide(encode(x, 16), shape[0], session)
    run_extension(ms, vs)
    corrections, mine = ms.corrections()
    got = decode(mine + vs.share(corrections), 32)
    exact = decode(encode(m, 16), 16) @ decode(encode(x, 16), 16)  # the product of what was encoded
    assert np.allclose(got, exact, rtol=0, atol=1e-9)


def test_corrections_look_random_and_malformed_ones_are_refused() -> None:
    session = os.urandom(16)
    ms, vs = MatrixSide(encode(np.ones((3, 4)), 16), 4, session), VectorSide(encode(np.zeros(4), 16), 3, session)
    run_extension(ms, vs)
    corrections, _ = ms.corrections()
    assert abs(np.unpackbits(corrections.view(np.uint8)).mean() - 0.5) < 0.02
    with pytest.raises(MalformedMessageError):
        vs.share(corrections[:10])


def test_truncation_of_shares_is_off_by_at_most_one_unit() -> None:
    # |x| * 2^32 < 2^36: a failure (probability ~2^-28 a value) is not expected among 200k values
    x = np.random.default_rng(1).normal(size=200_000) * 3
    a, b = split(encode(x, 32))
    got = decode(truncate(a, 16, True) + truncate(b, 16, False), 16)
    assert np.max(np.abs(got - x)) <= 2 * 2.0**-16
