"""Shares of a binned party's linear algebra from punctured OT keys: lookups ``X a`` and scatters ``X^T v``.

One party, the *chooser*, holds each row's bin ``b_{i,f}`` of each of its features (one-hot
columns ``X``); the other, the *holder*, holds the values. The setup is the one of SecureBoost's OT
histograms (:mod:`misuan.protocols.secureboost.shares`): one IKNP OT per (row, feature, bin) with the
chooser's choice bit "not my bin", so the holder has a key ``K_{i,f,j}`` for every cell and the
chooser the same keys except at its own bin of each row and feature (a punctured key). Every *use*
(an iteration's lookup, its scatter: a fresh ``use`` number each time) derives fresh cell pads
``P = AES_{k_use}(K)`` under a public per-use key, as SecureBoost's per-tree pads.

- **Lookup** (:meth:`Holder.lookup` / :meth:`Chooser.lookup`): the holder has a vector ``a_f`` per
  feature (one word per bin, the same for every row) and the parties end with additive shares of
  ``(X a)_i = sum_f a_f[b_{i,f}]``. A 1-out-of-n OT per (row, feature) from the punctured key
  (n-1-out-of-n): the mask of bin ``j`` is ``H(S ^ P_j)`` with ``S`` the XOR of the row's pads of the
  feature, so ``S ^ P_j = XOR of the pads of the other bins``; the chooser can form it only for its own
  bin (every other contains the pad it lacks). ``H`` is the tweaked fixed-key hash of the OT extension
  (correlation robust: the inputs of one row differ by pads the chooser knows). The holder sends
  ``E_{i,f,j} = a_f[j] + r_{i,f} + H(S ^ P_j)`` for every bin (``r`` fresh random words, its share
  ``-sum_f r_{i,f}``); the chooser keeps ``E_{i,f,b} - H(S ^ P_b)``. n words per row and feature,
  of 32 bits: the shares of ``X a`` are mod 2^32 (what the sigmoid needs of a score is its value
  mod 2^25, :mod:`.sigmoid_table`), which halves the largest message of an iteration.
- **Scatter** (:meth:`Holder.scatter` / :meth:`Chooser.scatter`): the holder has one word ``v_i`` per
  row and the parties end with shares of ``(X^T v)_{f,j} = sum of v_i over the rows in bin j``.
  SecureBoost's histogram step with one value mod 2^128 (a whole pad block): the holder sends
  ``D_{i,f} = v_i + sum_j P_{i,f,j}``, the chooser's share of a cell is its pad, at its own bin
  ``D - (pads of the other bins) = v_i + P_b``; summed over rows, minus the holder's pad sums, that
  is ``X^T v``. 16 bytes per row and feature.

What each side sees: the chooser receives only words one-time padded by values derived from the key
it lacks (``P_b``, or ``H`` of inputs containing it), fresh per use; the holder receives nothing (its
shares are its own randomness and pads). Lookups are mod 2^32, so shares of fixed-point values add
up exactly there; scatters are mod 2^128 (:mod:`.u128`), as their sums feed the optimiser's products. Security model: semi-honest, AES as an ideal cipher for the per-use
pads and the fixed-key hash (the assumptions of the OT extension itself).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from misuan.crypto.aes_prg import BLOCK, BlockCipher, fixed_key_hash
from misuan.errors import MalformedMessageError
from misuan.protocols.vertical_lr import u128
from misuan.protocols.vertical_lr.chunks import map_chunks
from misuan.protocols.vertical_lr.ring import random_words

__all__ = ["Chooser", "Holder"]

_DOMAIN = b"misuan-vertical-lr-bins-v1"
_CHUNK_CELLS = 1 << 16  # cells of one chunk of rows (1 MiB of pads): a chunk stays in cache


def _use_key(session: bytes, use: int) -> bytes:
    return hashlib.sha256(_DOMAIN + session + use.to_bytes(8, "big")).digest()[:BLOCK]


def _tweak_word(session: bytes, use: int) -> np.uint64:
    """The first word of every hash tweak of a use (the second is the flat cell index): apart from
    the OT extension's and KKRT's tweaks under the same fixed key."""
    return np.frombuffer(hashlib.sha256(b"tweak" + _DOMAIN + session + use.to_bytes(8, "big")).digest()[:8], "<u8")[0]


class _Cells:
    """One direction's OT keys as ``(rows, cells)``, the features' cell offsets, and per-use pads."""

    def __init__(self, keys: np.ndarray, n_rows: int, n_bins: Sequence[int], session: bytes) -> None:
        self.n_rows = n_rows
        self.n_bins = [int(b) for b in n_bins]
        self.width = int(sum(self.n_bins))
        self.offsets = np.concatenate([[0], np.cumsum(self.n_bins)]).astype(np.int64)
        self.feature_of_cell = np.repeat(np.arange(len(self.n_bins)), self.n_bins)
        if keys.dtype != np.uint8 or keys.ndim != 2 or keys.shape[0] < n_rows * self.width or keys.shape[1] != BLOCK:
            raise ValueError("OT keys must be uint8 (rows x cells, 16)")
        self.keys = keys[: n_rows * self.width].reshape(n_rows, self.width, BLOCK)
        self.session = session
        self.chunk_rows = max(1, _CHUNK_CELLS // max(self.width, 1))

    def chunks(self) -> list[tuple[int, int]]:
        return [(a, min(a + self.chunk_rows, self.n_rows)) for a in range(0, self.n_rows, self.chunk_rows)]

    def pads(self, aes: BlockCipher, start: int, stop: int) -> np.ndarray:
        """``(stop - start, width, 16)`` uint8: the use's pads of the rows' cells."""
        k = stop - start
        out = np.empty(k * self.width * BLOCK + BLOCK, dtype=np.uint8)
        aes.encrypt_into(np.ascontiguousarray(self.keys[start:stop]).reshape(-1), out)
        return out[: k * self.width * BLOCK].reshape(k, self.width, BLOCK)

    def xor_per_feature(self, pads: np.ndarray) -> np.ndarray:
        """``(rows, features, 2)`` uint64: the XOR of each feature's pads."""
        words = pads.view(np.uint64)  # (rows, width, 2)
        return np.bitwise_xor.reduceat(words, self.offsets[:-1], axis=1)

    def masks(self, use: int, start: int, blocks: np.ndarray, cells: np.ndarray) -> np.ndarray:
        """One uint32 per block: ``H`` of the block under the tweak of (row, cell); ``blocks`` is
        ``(rows, m, 16)`` for rows ``start..`` and ``cells`` the ``(rows, m)`` cell index of each."""
        k, m = cells.shape
        flat = np.arange(start, start + k, dtype=np.int64)[:, None] * self.width + cells
        tw = np.empty((k * m, 2), dtype="<u8")
        tw[:, 0] = _tweak_word(self.session, use)
        tw[:, 1] = flat.reshape(-1).astype("<u8")
        digest = fixed_key_hash(np.ascontiguousarray(blocks).reshape(-1, BLOCK), tw.view(np.uint8))
        return digest.view(np.uint32)[:, 0].reshape(k, m).copy()


# one thread a process for what parties compute ahead (the work inside it still spreads over the cores)
_ahead = ThreadPoolExecutor(1, thread_name_prefix="vertical-lr-ahead")


class _Ahead:
    """The key-only parts of coming uses (masks, pad sums): a use's pads depend on its number and the
    keys alone, so they can be computed on a thread of their own while the party waits for its peer,
    and are taken when the use comes (or computed then, if nobody asked for them ahead)."""

    def __init__(self) -> None:
        self._pending: dict[tuple[str, int], Future[Any]] = {}

    def _parts(self, kind: str) -> Callable[[int], Any]:
        raise NotImplementedError

    def prefetch(self, kind: str, use: int) -> None:
        """Start computing ``kind`` (``"lookup"`` or ``"scatter"``) of ``use`` in the background."""
        if (kind, use) not in self._pending:
            for k in [k for k in self._pending if k[1] < use - 8]:  # stale ones dropped
                self._pending.pop(k).cancel()
            self._pending[(kind, use)] = _ahead.submit(self._parts(kind), use)

    def drop_ahead(self) -> None:
        """Forget what was asked for ahead (the training ended): what has not started never will."""
        for fut in self._pending.values():
            fut.cancel()
        self._pending = {}

    def _take(self, kind: str, use: int) -> Any:
        fut = self._pending.pop((kind, use), None)
        return self._parts(kind)(use) if fut is None else fut.result()


class Holder(_Ahead):
    """The side with every key: sends lookups' and scatters' corrections, keeps its shares."""

    def __init__(self, keys: np.ndarray, n_rows: int, n_bins: Sequence[int], session: bytes) -> None:
        super().__init__()
        self.cells = _Cells(keys, n_rows, n_bins, session)

    def _parts(self, kind: str) -> Callable[[int], Any]:
        return self.lookup_masks if kind == "lookup" else self.scatter_pads

    def lookup_masks(self, use: int) -> np.ndarray:
        """``(rows, cells)`` uint32: each cell's mask, the hash of the XOR of its feature's other pads."""
        c = self.cells
        key = _use_key(c.session, use)
        out = np.empty((c.n_rows, c.width), dtype=np.uint32)
        cells = np.broadcast_to(np.arange(c.width), (c.chunk_rows, c.width))

        def chunk(bounds: tuple[int, int]) -> None:
            start, stop = bounds
            p = c.pads(BlockCipher(key), start, stop)
            s = c.xor_per_feature(p)[:, c.feature_of_cell]  # (k, width, 2)
            others = (s ^ p.view(np.uint64)).view(np.uint8)  # XOR of the pads of the feature's other bins
            out[start:stop] = c.masks(use, start, others, cells[: stop - start])

        map_chunks(chunk, c.chunks())
        return out

    def lookup(self, use: int, vectors: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """For per-feature words ``vectors[f]`` (one per bin, taken mod 2^32): the corrections to send
        (``(rows, cells)`` uint32) and this side's share of ``X a`` mod 2^32 (``(rows,)`` uint32)."""
        c = self.cells
        if len(vectors) != len(c.n_bins) or any(v.dtype.kind != "u" or v.shape != (b,) for v, b in zip(vectors, c.n_bins, strict=True)):
            raise ValueError("lookup takes one unsigned word per bin of every feature")
        a = np.concatenate(vectors).astype(np.uint32) if vectors else np.zeros(0, np.uint32)
        out = self._take("lookup", use)  # the masks, turned into the corrections in place
        share = np.empty(c.n_rows, dtype=np.uint32)

        def chunk(bounds: tuple[int, int]) -> None:
            start, stop = bounds
            r = random_words((stop - start, len(c.n_bins))).astype(np.uint32)
            out[start:stop] += a[None, :] + r[:, c.feature_of_cell]
            share[start:stop] = np.uint32(0) - r.sum(axis=1, dtype=np.uint32)

        map_chunks(chunk, c.chunks())
        return out, share

    def scatter_pads(self, use: int) -> tuple[np.ndarray, np.ndarray]:
        """Per row and feature the sum of its bins' pads (``(rows, features, 2)``), and per cell the
        sum of its pads over the rows (``(cells, 2)``)."""
        c = self.cells
        key = _use_key(c.session, use)
        out = np.empty((c.n_rows, len(c.n_bins), 2), dtype=np.uint64)

        def chunk(bounds: tuple[int, int]) -> np.ndarray:
            start, stop = bounds
            p = c.pads(BlockCipher(key), start, stop).view(np.uint64)  # (k, width, 2): one value mod 2^128 a cell
            out[start:stop] = u128.segment_sums(p, c.offsets[:-1], axis=1)
            return u128.sum_rows(p, axis=0)

        sums = np.zeros((c.width, 2), dtype=np.uint64)
        for part in map_chunks(chunk, c.chunks()):
            sums = u128.add(sums, part)
        return out, sums

    def scatter(self, use: int, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For one value mod 2^128 per row (``(rows, 2)`` uint64 word pairs): the corrections to send
        (``(rows, features, 2)``) and this side's share of ``X^T v`` (``(cells, 2)``)."""
        c = self.cells
        if values.dtype != np.uint64 or values.shape != (c.n_rows, 2):
            raise ValueError("scatter takes one value mod 2^128 (two uint64 words) per row")
        out, sums = self._take("scatter", use)

        def chunk(bounds: tuple[int, int]) -> None:
            start, stop = bounds
            out[start:stop] = u128.add(out[start:stop], values[start:stop, None, :])

        map_chunks(chunk, c.chunks())
        return out, u128.neg(sums)


class Chooser(_Ahead):
    """The side with the bins and the punctured keys: turns the holder's corrections into its shares."""

    def __init__(self, keys: np.ndarray, bins: np.ndarray, n_bins: Sequence[int], session: bytes) -> None:
        super().__init__()
        self.cells = _Cells(keys, bins.shape[0], n_bins, session)
        if bins.ndim != 2 or bins.shape[1] != len(self.cells.n_bins):
            raise ValueError("bins are (rows, features)")
        self.own = self.cells.offsets[None, :-1] + bins.astype(np.int64)  # (rows, features): own cell

    def _parts(self, kind: str) -> Callable[[int], Any]:
        return self.lookup_masks if kind == "lookup" else self.scatter_pads

    def lookup_masks(self, use: int) -> np.ndarray:
        """The masks of its own bins for a use's lookup (``(rows, features)`` uint32): they need only
        its keys, so they can be computed before the holder's corrections arrive."""
        c = self.cells
        key = _use_key(c.session, use)
        masks = np.empty((c.n_rows, len(c.n_bins)), dtype=np.uint32)

        def chunk(bounds: tuple[int, int]) -> None:
            start, stop = bounds
            p = c.pads(BlockCipher(key), start, stop)
            own = self.own[start:stop]
            rows = np.arange(stop - start)[:, None]
            # its XOR over all cells includes its unrelated pad at its own bin: XOR that out again
            others = c.xor_per_feature(p) ^ p.view(np.uint64)[rows, own]  # (k, features, 2)
            masks[start:stop] = c.masks(use, start, others.view(np.uint8), own)

        map_chunks(chunk, c.chunks())
        return masks

    def lookup(self, use: int, corrections: np.ndarray) -> np.ndarray:
        """This side's share of ``X a`` mod 2^32 (``(rows,)`` uint32) from the holder's lookup corrections."""
        c = self.cells
        if not isinstance(corrections, np.ndarray) or corrections.dtype != np.uint32 or corrections.shape != (c.n_rows, c.width):
            raise MalformedMessageError(f"lookup corrections must be uint32 ({c.n_rows}, {c.width})")
        masks = self._take("lookup", use)
        picked = np.take_along_axis(corrections, self.own, axis=1)  # (rows, features): its own bins'
        return (picked - masks).sum(axis=1, dtype=np.uint32)

    def scatter_pads(self, use: int) -> tuple[np.ndarray, np.ndarray]:
        """What a use's scatter needs of its keys alone: per row and feature the sum of the other bins'
        pads (``(rows, features, 2)``), and per cell the pads' sums less its own bins' (``(cells, 2)``)."""
        c = self.cells
        key = _use_key(c.session, use)
        others = np.empty((c.n_rows, len(c.n_bins), 2), dtype=np.uint64)

        def chunk(bounds: tuple[int, int]) -> np.ndarray:
            start, stop = bounds
            p = c.pads(BlockCipher(key), start, stop).view(np.uint64)
            own = self.own[start:stop]
            mine = p[np.arange(stop - start)[:, None], own]  # its unrelated pad at its own bin: not part of any share
            others[start:stop] = u128.sub(u128.segment_sums(p, c.offsets[:-1], axis=1), mine)
            return u128.sub(u128.sum_rows(p, axis=0), u128.bin_sums(own, mine, c.width))

        sums = np.zeros((c.width, 2), dtype=np.uint64)
        for part in map_chunks(chunk, c.chunks()):
            sums = u128.add(sums, part)
        return others, sums

    def scatter(self, use: int, corrections: np.ndarray) -> np.ndarray:
        """This side's share of ``X^T v`` (``(cells, 2)``) from the holder's scatter corrections."""
        c = self.cells
        if not isinstance(corrections, np.ndarray) or corrections.dtype != np.uint64 \
                or corrections.shape != (c.n_rows, len(c.n_bins), 2):
            raise MalformedMessageError(f"scatter corrections must be uint64 ({c.n_rows}, {len(c.n_bins)}, 2)")
        others, sums = self._take("scatter", use)

        def chunk(bounds: tuple[int, int]) -> np.ndarray:  # bin_sums is exact for 2^21 terms a call
            start, stop = bounds
            return u128.bin_sums(self.own[start:stop], u128.sub(corrections[start:stop], others[start:stop]), c.width)

        for part in map_chunks(chunk, c.chunks()):
            sums = u128.add(sums, part)
        return sums
