"""Vertical LR building blocks: mod 2^128 arithmetic on word pairs against Python integers."""

from __future__ import annotations

import numpy as np

from misuan.protocols.vertical_lr import u128


def test_word_pair_arithmetic_matches_python_integers() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2**63, size=(50, 2), dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    b = rng.integers(0, 2**63, size=(50, 2), dtype=np.uint64) * np.uint64(3)
    ia, ib = u128.to_ints(a), u128.to_ints(b)
    assert u128.to_ints(u128.add(a, b)) == [(x + y) % u128.MOD for x, y in zip(ia, ib, strict=True)]
    assert u128.to_ints(u128.sub(a, b)) == [(x - y) % u128.MOD for x, y in zip(ia, ib, strict=True)]
    bits = np.arange(50) * 2 + 1  # 1..99: below and above one word
    assert u128.to_ints(u128.shl(a, bits)) == [(x << int(s)) % u128.MOD for x, s in zip(ia, bits, strict=True)]
    assert u128.to_ints(u128.shl(a, np.zeros(50, np.int64))) == ia
    assert u128.to_ints(u128.sum_rows(a)) == [sum(ia) % u128.MOD]
    assert u128.to_ints(u128.from_ints([-1, 5])) == [u128.MOD - 1, 5]
    w = np.array([5, 2**64 - 3], dtype=np.uint64)
    assert u128.to_ints(u128.widen(w, signed=True)) == [5, u128.MOD - 3]
    assert u128.to_ints(u128.widen(w, signed=False)) == [5, 2**64 - 3]
