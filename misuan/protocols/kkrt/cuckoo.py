"""Cuckoo hashing of the receiver's items into bins, vectorised with NumPy.

Each item has ``HASHES`` candidate bins (:func:`candidate_bins`, AES under public per-table keys,
so the sender computes the same bins for its own items). :func:`insert` places every item in one
of its candidates, at most one item per bin, by parallel rounds of the random-walk insertion:
all homeless items claim their current candidate, one claimant per bin wins and evicts the
previous occupant, and every loser or evicted item moves on to another of its candidates, chosen
at random. It either places every item or reports failure after ``max_rounds``; the caller then
draws new table keys (see :mod:`misuan.protocols.kkrt.params` for the failure bound), so a
failure costs a retry, never a wrong result.
"""

from __future__ import annotations

import numpy as np

from misuan.crypto.aes_prg import prf

__all__ = ["candidate_bins", "insert"]


def candidate_bins(digests: np.ndarray, keys: list[bytes], n_bins: int) -> np.ndarray:
    """``(n, len(keys))`` int64 bins of ``digests`` (``(n, 16)`` uint8): AES under each key, mod ``n_bins``."""
    out = np.empty((digests.shape[0], len(keys)), dtype=np.int64)
    for h, key in enumerate(keys):
        word = prf(key, digests)[:, :8].copy().view("<u8").reshape(-1)
        out[:, h] = (word % np.uint64(n_bins)).astype(np.int64)
    return out


def insert(bins: np.ndarray, n_bins: int, rng: np.random.Generator, max_rounds: int = 2000) -> np.ndarray | None:
    """The bin of each item (``bins``: its candidates), or None when the walk did not settle."""
    n, k = bins.shape
    table = np.full(n_bins, -1, dtype=np.int64)
    choice = np.zeros(n, dtype=np.int64)
    homeless = np.arange(n, dtype=np.int64)
    for _ in range(max_rounds):
        if homeless.size == 0:
            where = np.full(n, -1, dtype=np.int64)
            placed = np.flatnonzero(table >= 0)
            where[table[placed]] = placed
            return where
        target = bins.reshape(-1)[homeless * k + choice[homeless]]
        before = table[target]
        # one claimant per bin wins: whichever the assignment writes last (no sort, unlike np.unique)
        table[target] = homeless
        won = table[target] == homeless
        evicted = before[won]  # the winners' bins are distinct: each evicts at most its bin's occupant
        moved = np.concatenate([homeless[~won], evicted[evicted >= 0]])
        # another candidate, at random: a fixed order can cycle
        choice[moved] = (choice[moved] + rng.integers(1, k, size=moved.size)) % k
        homeless = moved
    return None
