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


def test_shifts_truncation_and_small_products() -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(0, 2**63, size=(40, 2), dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    ia = u128.to_ints(a)
    assert u128.to_ints(u128.shr(a, 20)) == [x >> 20 for x in ia]
    k = rng.integers(0, 2**31, size=40)
    assert u128.to_ints(u128.mul_small(a, k)) == [(x * int(m)) % u128.MOD for x, m in zip(ia, k, strict=True)]
    x = [int(v) for v in rng.integers(-(2**60), 2**60, size=40)]
    s1 = [int.from_bytes(rng.bytes(16), "big") for _ in x]
    s2 = [(v - r) % u128.MOD for v, r in zip(x, s1, strict=True)]
    t = u128.add(u128.truncate(u128.from_ints(s1), 16, True), u128.truncate(u128.from_ints(s2), 16, False))
    got = [(v if v < u128.MOD // 2 else v - u128.MOD) for v in u128.to_ints(t)]
    assert all(abs(g - (v >> 16)) <= 1 for g, v in zip(got, x, strict=True))


def test_sums_agree_on_contiguous_and_strided_words() -> None:
    """The sums read 32-bit limbs through a view where the words lie in pairs, by masks elsewhere."""
    rng = np.random.default_rng(7)
    a = rng.integers(0, 2**64 - 1, size=(40, 12, 2), dtype=np.uint64, endpoint=True)
    strided = a[:, ::2]  # pairs still adjacent, rows not: the mask path
    want = [sum(int(lo) | (int(hi) << 64) for lo, hi in strided[:, j]) % u128.MOD for j in range(6)]
    assert u128.to_ints(u128.sum_rows(strided, axis=0)) == want
    assert u128.to_ints(u128.sum_rows(np.ascontiguousarray(strided), axis=0)) == want
    starts = np.array([0, 5])
    seg = u128.segment_sums(a, starts, axis=1)
    assert np.array_equal(seg, u128.segment_sums(np.asfortranarray(a), starts, axis=1))
    cells = rng.integers(0, 9, size=(40, 12))
    assert np.array_equal(u128.bin_sums(cells, a, 9), u128.bin_sums(cells, np.asfortranarray(a), 9))
