from __future__ import annotations

import numpy as np
import pytest

from misuan.crypto.he import PrivateKey, PublicKey, generate_keypair
from misuan.errors import CryptoError
from misuan.protocols.woe import he_batch
from misuan.protocols.woe.he_batch import (
    BinSumAccumulator,
    ZeroEncryptions,
    bin_sums_by_feature,
    chunk_bounds,
    encrypt_labels,
    group_bin_sums,
    plan_groups,
)


@pytest.fixture(scope="module")
def keys() -> tuple[PublicKey, PrivateKey]:
    return generate_keypair("ou", 1024)


def test_plan_groups_saves_multiplications() -> None:
    assert plan_groups(100_000, [11] * 25)[0] == [0, 1, 2]  # 3 features of 11 bins per group
    assert all(len(g) == 2 for g in plan_groups(100_000, [51] * 4))  # pre-bins: pairs
    assert plan_groups(10, [11, 11]) == [[0], [1]]  # too few rows to share anything
    assert sorted(j for g in plan_groups(1000, [3, 50, 7, 7, 2]) for j in g) == [0, 1, 2, 3, 4]


def test_grouped_and_chunked_sums_equal_plain_bin_sums(keys: tuple[PublicKey, PrivateKey]) -> None:
    pk, sk = keys
    rng = np.random.default_rng(0)
    n = 400
    y = rng.integers(0, 2, n)
    codes = [rng.integers(0, b, n) for b in (4, 7, 3, 1)]
    n_bins = [4, 7, 3, 2]  # the last feature has an empty bin
    wire = encrypt_labels(pk, y)
    cts = pk.from_array(wire)
    want = [[int(y[c == b].sum()) for b in range(nb)] for c, nb in zip(codes, n_bins, strict=True)]
    grouped = group_bin_sums(pk, cts, codes, n_bins)
    assert [sk.decrypt_ints(s) for s in grouped] == want
    acc = BinSumAccumulator(pk, codes, n_bins, workers=1)
    for lo, hi in chunk_bounds(n, 128):
        acc.add(lo, cts[lo:hi], wire[lo:hi])
    assert [sk.decrypt_ints(s) for s in acc.result()] == want
    assert [sk.decrypt_ints(s) for s in bin_sums_by_feature(pk, cts, wire, codes, n_bins, 1)] == want


def test_worker_processes_give_the_same_sums(
    keys: tuple[PublicKey, PrivateKey], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(he_batch, "POOL_MIN_MULTIPLICATIONS", 0)
    monkeypatch.setattr(he_batch, "POOL_MIN_ENCRYPTIONS", 0)
    pk, sk = keys
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    codes = [rng.integers(0, 5, 300) for _ in range(3)]
    wire = encrypt_labels(pk, y, workers=2)
    assert sk.decrypt_ints(pk.from_array(wire)) == y.tolist()
    sums = bin_sums_by_feature(pk, pk.from_array(wire), wire, codes, [5, 5, 5], workers=2)
    assert [sk.decrypt_ints(s) for s in sums] == [[int(y[c == b].sum()) for b in range(5)] for c in codes]


def test_chunk_bounds() -> None:
    assert chunk_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert chunk_bounds(0, 4) == []


def test_precomputed_zero_encryptions_encrypt_bits_once_each(keys: tuple[PublicKey, PrivateKey]) -> None:
    pk, sk = keys
    zeros = ZeroEncryptions.precompute(pk, 50)
    assert len(zeros) == 50 and sk.decrypt_ints(zeros.take(2)) == [0, 0] and len(zeros) == 48
    bits = np.array([0, 1, 1, 0, 1] * 8)
    wire = zeros.encrypt_bits(bits)
    cts = pk.from_array(wire)
    assert sk.decrypt_ints(cts) == bits.tolist() and len(set(cts)) == 40 and len(zeros) == 8
    with pytest.raises(CryptoError, match="precompute at least"):
        zeros.encrypt_bits(np.zeros(9, np.int64))
    with pytest.raises(CryptoError, match="0 and 1"):
        zeros.encrypt_bits(np.array([2]))
