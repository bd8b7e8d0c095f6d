"""The receiver's side of KKRT-PSI: cuckoo table, base-OT sender, OT-extension columns, matching. No channel."""

from __future__ import annotations

import os

import numpy as np

from misuan.crypto.aes_prg import expand, fixed_key_hash, prf
from misuan.crypto.ot import POINT_BYTES, OtSender
from misuan.errors import CryptoError, MalformedMessageError
from misuan.protocols.kkrt.bitmatrix import transpose
from misuan.protocols.kkrt.cuckoo import candidate_bins, insert
from misuan.protocols.kkrt.messages import Columns, Outputs, ReceiverSetup, SenderSetup
from misuan.protocols.kkrt.params import CHUNK_BINS, CODE_BITS, CODE_BYTES, CUCKOO_TRIES, HASHES, n_bins_for

__all__ = ["OprfReceiver", "codewords", "tweaks"]


def codewords(code_keys: list[bytes], digests: np.ndarray) -> np.ndarray:
    """``C(x)``: AES of each 16-byte digest under each code key, concatenated (``(n, CODE_BYTES)`` uint8)."""
    return np.concatenate([prf(k, digests) for k in code_keys], axis=1)


def tweaks(session: bytes, bins: np.ndarray, hash_index: np.ndarray) -> np.ndarray:
    """The hash tweak of each value: the session's first 7 bytes, the cuckoo hash function that
    chose the bin, and the bin index (big-endian). With the hash function in it, an ID whose candidate
    bins coincide still gives distinct values (KKRT evaluate the OPRF on ``y || i``)."""
    out = np.empty((bins.size, 16), dtype=np.uint8)
    out[:, :7] = np.frombuffer(session[:7], dtype=np.uint8)
    out[:, 7] = hash_index.astype(np.uint8)
    out[:, 8:] = bins.astype(">u8").view(np.uint8).reshape(-1, 8)
    return out


class OprfReceiver:
    """:meth:`setup`, :meth:`accept_sender_setup`, :meth:`columns` for each chunk, :meth:`accept_outputs`, :meth:`matches`."""

    def __init__(self, digests: np.ndarray, n_peer: int, out_bytes: int) -> None:
        self.digests = digests
        self.n, self.n_peer, self.out_bytes = digests.shape[0], n_peer, out_bytes
        self.n_bins = n_bins_for(self.n)
        self.session = os.urandom(16)
        self.ot = OtSender()
        self.bin_of = np.empty(0, dtype=np.int64)
        self._own_items: np.ndarray = np.empty(0, dtype=np.int64)
        self._own_values = np.empty((0, out_bytes), dtype=np.uint8)
        self._hits: list[np.ndarray] = []  # (sender position, own row) of matched outputs, chunk by chunk
        self._received = 0
        self._sorted: tuple[np.ndarray, np.ndarray] | None = None

    def setup(self) -> ReceiverSetup:
        """Place every item in the cuckoo table (new keys on a failure, locally), start the base OTs."""
        rng = np.random.default_rng(int.from_bytes(os.urandom(8), "big"))
        for _ in range(CUCKOO_TRIES):
            keys = [os.urandom(16) for _ in range(HASHES)]
            candidates = candidate_bins(self.digests, keys, self.n_bins)
            where = insert(candidates, self.n_bins, rng)
            if where is not None:
                self.bin_of, self.bin_keys = where, keys
                # which hash function placed each ID (the first, where two give the same bin)
                self.hash_of = np.argmax(candidates == where[:, None], axis=1) if self.n else np.empty(0, np.int64)
                break
        else:
            raise CryptoError(f"cuckoo hashing of {self.n} IDs failed {CUCKOO_TRIES} times (expected < 2^-40 each)")
        return ReceiverSetup(
            self.n_bins, np.frombuffer(b"".join(self.bin_keys), dtype=np.uint8).reshape(HASHES, 16),
            np.frombuffer(self.ot.message, dtype=np.uint8), np.frombuffer(self.session, dtype=np.uint8),
        )

    def accept_sender_setup(self, msg: SenderSetup) -> None:
        pts = np.asarray(msg.base_ot)
        keys = np.asarray(msg.code_keys)
        if pts.dtype != np.uint8 or pts.shape != (CODE_BITS, POINT_BYTES):
            raise MalformedMessageError(f"base-OT points must be uint8 ({CODE_BITS}, {POINT_BYTES})")
        if keys.dtype != np.uint8 or keys.shape != (CODE_BYTES // 16, 16):
            raise MalformedMessageError(f"code keys must be uint8 ({CODE_BYTES // 16}, 16)")
        self.seeds = self.ot.keys([bytes(p) for p in pts])
        code = codewords([bytes(k) for k in keys], self.digests)
        # an empty bin's codeword is never compared (the receiver may choose any input for it): zeros,
        # not random; the sender's values at an empty bin stay pseudorandom to the receiver either way
        rows = np.zeros((self.n_bins, CODE_BYTES), dtype=np.uint8)
        rows[self.bin_of] = code
        self._code_cols = transpose_rows(rows)

    def chunks(self) -> list[tuple[int, int]]:
        return [(a, min(a + CHUNK_BINS, self.n_bins)) for a in range(0, self.n_bins, CHUNK_BINS)]

    def columns(self, start: int, stop: int) -> Columns:
        """The chunk's columns ``u_i``; keeps ``H(t_j)`` of its occupied bins."""
        a, nbytes = start // 8, (stop - start) // 8
        t_cols = np.empty((CODE_BITS, nbytes), dtype=np.uint8)
        u_cols = np.empty((CODE_BITS, nbytes), dtype=np.uint8)
        for i, (k0, k1) in enumerate(self.seeds):
            t = expand(k0, a, nbytes)
            t_cols[i] = t
            u_cols[i] = t ^ expand(k1, a, nbytes) ^ self._code_cols[i, a : a + nbytes]
        t_rows = transpose(t_cols)
        items = np.flatnonzero((self.bin_of >= start) & (self.bin_of < stop))
        bins = self.bin_of[items]
        values = fixed_key_hash(t_rows[bins - start], tweaks(self.session, bins, self.hash_of[items]))[:, : self.out_bytes]
        self._own_items = np.concatenate([self._own_items, items])
        self._own_values = np.concatenate([self._own_values, values])
        return Columns(start, u_cols)

    def accept_outputs(self, msg: Outputs) -> None:
        values = np.asarray(msg.values)
        k = values.shape[0] if values.ndim == 3 else -1
        if values.dtype != np.uint8 or values.shape[1:] != (HASHES, self.out_bytes) or msg.start != self._received:
            raise MalformedMessageError(f"OPRF outputs must be uint8 (items, {HASHES}, {self.out_bytes}) in order")
        if self._received + k > self.n_peer:
            raise MalformedMessageError(f"more OPRF outputs than the {self.n_peer} IDs the peer announced")
        self._hits.append(self._match_chunk(values, self._received))  # while the sender computes the next chunk
        self._received += k

    @property
    def complete(self) -> bool:
        return self._received == self.n_peer

    def _own_sorted(self) -> tuple[np.ndarray, np.ndarray]:
        if self._sorted is None:
            own_key = self._own_values[:, :8].copy().view("<u8").reshape(-1)
            order = np.argsort(own_key)
            self._sorted = (order, own_key[order])
        return self._sorted

    def _match_chunk(self, values: np.ndarray, start: int) -> np.ndarray:
        """``(k, 2)`` pairs (sender position, own row) of the chunk's values equal to one of ours."""
        order, sorted_keys = self._own_sorted()
        flat = values.reshape(-1, self.out_bytes)
        if sorted_keys.size == 0 or flat.shape[0] == 0:
            return np.empty((0, 2), dtype=np.int64)
        their_key = flat[:, :8].copy().view("<u8").reshape(-1)
        their_order = np.argsort(their_key)  # sorted queries: searchsorted walks memory in order
        their_sorted = their_key[their_order]
        at = np.minimum(np.searchsorted(sorted_keys, their_sorted), sorted_keys.size - 1)
        found = np.flatnonzero(sorted_keys[at] == their_sorted)
        hit, own_rows = their_order[found], order[at[found]]
        same = np.all(self._own_values[own_rows] == flat[hit], axis=1)  # all bytes, not just the first 8
        return np.stack([start + hit[same] // HASHES, own_rows[same]], axis=1).astype(np.int64)

    def matches(self) -> tuple[np.ndarray, np.ndarray]:
        """(own items, the sender's positions) of the shared IDs, own items sorted by ID digest."""
        pairs = np.concatenate(self._hits) if self._hits else np.empty((0, 2), dtype=np.int64)
        # an ID whose candidate bins coincide sends equal values for them: keep one match per ID
        by_pos = np.argsort(pairs[:, 0], kind="stable")
        pos, own_rows = pairs[by_pos, 0], pairs[by_pos, 1]
        first = np.ones(pos.size, dtype=bool)
        first[1:] = pos[1:] != pos[:-1]
        positions, own_items = pos[first], self._own_items[own_rows[first]]
        if own_items.size and int(np.max(np.bincount(own_items, minlength=self.n))) > 1:
            raise CryptoError("an ID matched twice: the OPRF outputs collided (probability below 2^-40)")
        by_digest = np.lexsort(self.digests[own_items].T[::-1])
        return own_items[by_digest], positions[by_digest]


def transpose_rows(rows: np.ndarray) -> np.ndarray:
    """``(n_bins, CODE_BYTES)`` rows to ``(CODE_BITS, n_bins/8)`` columns, a chunk of bins at a time.

    A ``(k, 64)`` byte matrix is a bit matrix of ``k`` rows and 512 columns, so :func:`transpose`
    turns it into the ``(512, k/8)`` columns.
    """
    n = rows.shape[0]
    out = np.empty((CODE_BITS, n // 8), dtype=np.uint8)
    for a in range(0, n, CHUNK_BINS):
        b = min(a + CHUNK_BINS, n)
        out[:, a // 8 : b // 8] = transpose(np.ascontiguousarray(rows[a:b]))
    return out
