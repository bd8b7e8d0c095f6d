"""Vertical LR building blocks: lookups and scatters from punctured OT keys add up to their plaintext twins."""

from __future__ import annotations

import os

import numpy as np
import pytest

from misuan.crypto.ot_extension import ExtensionReceiver, ExtensionSender, chunks_of
from misuan.errors import MalformedMessageError
from misuan.protocols.secureboost.shares import choice_bits
from misuan.protocols.vertical_lr import u128
from misuan.protocols.vertical_lr.bin_shares import Chooser, Holder
from misuan.protocols.vertical_lr.ring import encode


def _parties(bins: np.ndarray, n_bins: list[int]) -> tuple[Holder, Chooser]:
    """Both sides after a real IKNP extension with the chooser's "not my bin" choice bits."""
    session = os.urandom(16)
    choices = choice_bits(bins, n_bins)
    r, s = ExtensionReceiver(choices, session), ExtensionSender(len(choices), session)
    r.accept_base_points(s.base_points(r.base_message))
    for a, b in chunks_of(len(choices)):
        s.accept_columns(a, r.columns(a, b))
    return Holder(s.keys, bins.shape[0], n_bins, session), Chooser(r.keys, bins, n_bins, session)


def _data(n: int, n_bins: list[int], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, b, n) for b in n_bins], axis=1).astype(np.uint8)


def _one_hot(bins: np.ndarray, n_bins: list[int]) -> np.ndarray:
    return np.hstack([np.eye(b)[bins[:, f]] for f, b in enumerate(n_bins)])


@pytest.mark.parametrize("n", [1, 7, 70_000])  # 70k rows: several chunks
def test_lookup_shares_add_up_to_x_times_a(n: int) -> None:
    n_bins = [3, 10, 1, 5]
    bins = _data(n, n_bins)
    holder, chooser = _parties(bins, n_bins)
    rng = np.random.default_rng(1)
    a = [rng.normal(size=b) for b in n_bins]
    corrections, held = holder.lookup(use=3, vectors=[encode(v, 20) for v in a])
    assert corrections.dtype == held.dtype == np.uint32  # shares mod 2^32: what the sigmoid needs of a score
    got = (held + chooser.lookup(3, corrections)).view(np.int32) / 2.0**20
    want = _one_hot(bins, n_bins) @ np.concatenate(a)
    assert np.allclose(got, want, atol=4 * 2.0**-20)


@pytest.mark.parametrize("n", [1, 70_000])
def test_scatter_shares_add_up_to_x_transpose_v(n: int) -> None:
    n_bins = [4, 10, 2]
    bins = _data(n, n_bins, seed=2)
    holder, chooser = _parties(bins, n_bins)
    v = np.random.default_rng(3).integers(-(2**62), 2**62, size=n)
    corrections, held = holder.scatter(use=8, values=u128.from_ints(list(v)))
    got = u128.to_ints(u128.add(held, chooser.scatter(8, corrections)))
    want = [int(x) % u128.MOD for x in _one_hot(bins, n_bins).astype(np.int64).T.astype(object) @ v.astype(object)]
    assert got == want


def test_what_the_chooser_receives_hides_the_holders_words() -> None:
    """The chooser can unmask its own bin only: with its keys, every other cell's correction minus
    what it can compute is not the holder's word (nor any fixed offset of it), and a use's
    corrections look uniform whatever the words (all equal here)."""
    n_bins = [6, 6]
    bins = _data(20_000, n_bins, seed=4)
    holder, chooser = _parties(bins, n_bins)
    words = [encode(np.full(6, 0.25), 20), encode(np.full(6, 0.25), 20)]
    corrections, _ = holder.lookup(use=1, vectors=words)
    # the differences between two cells of a row would be a_j - a_j' (= 0 here) under a linear mask
    diffs = corrections[:, 1] - corrections[:, 2]
    assert len(np.unique(diffs)) > 19_900
    bits = np.unpackbits(corrections.view(np.uint8))
    assert abs(bits.mean() - 0.5) < 0.002
    # a fresh use pads afresh: the same words give unrelated corrections
    again, _ = holder.lookup(use=2, vectors=words)
    assert not np.any(again == corrections)


def test_malformed_corrections_are_refused() -> None:
    n_bins = [2, 3]
    bins = _data(10, n_bins)
    holder, chooser = _parties(bins, n_bins)
    with pytest.raises(MalformedMessageError):
        chooser.lookup(0, np.zeros((10, 4), np.uint64))
    with pytest.raises(MalformedMessageError):
        chooser.scatter(0, np.zeros((10, 2, 2), np.float64))
    with pytest.raises(ValueError):
        holder.lookup(0, [np.zeros(2, np.uint64)])


def test_parts_computed_ahead_give_the_same_shares() -> None:
    """Masks and pad sums asked for ahead (both sides, in the background) are the ones the use needs;
    parts asked for another use are not taken by this one."""
    n_bins = [3, 6]
    bins = _data(5000, n_bins, seed=4)
    holder, chooser = _parties(bins, n_bins)
    a = [encode(np.arange(b, dtype=np.float64), 20) for b in n_bins]
    for side in (holder, chooser):
        side.prefetch("lookup", 5)
        side.prefetch("scatter", 6)
        side.prefetch("lookup", 99)  # never used: dropped below
    corrections, held = holder.lookup(5, a)
    got = (held + chooser.lookup(5, corrections)).view(np.int32) / 2.0**20
    assert np.allclose(got, _one_hot(bins, n_bins) @ np.concatenate([np.arange(b) for b in n_bins]), atol=1e-5)
    v = np.arange(5000, dtype=np.int64)
    corrections, held = holder.scatter(6, u128.from_ints(list(v)))
    sums = u128.to_ints(u128.add(held, chooser.scatter(6, corrections)))
    assert sums == [int(x) for x in _one_hot(bins, n_bins).T.astype(np.int64) @ v]
    for side in (holder, chooser):
        side.drop_ahead()
        assert not side._pending
