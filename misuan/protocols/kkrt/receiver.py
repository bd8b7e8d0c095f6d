"""The receiver's side of KKRT-PSI: cuckoo table, base-OT sender, OT-extension columns, matching. No channel."""

from __future__ import annotations

import os

import numpy as np

from misuan.crypto.aes_prg import Keystreams, fixed_key_hash, prf
from misuan.crypto.bitmatrix import transpose
from misuan.crypto.ot import POINT_BYTES, OtSender
from misuan.crypto.rows import put_rows, take_rows
from misuan.errors import CryptoError, MalformedMessageError
from misuan.protocols.kkrt.cuckoo import candidate_bins, insert
from misuan.protocols.kkrt.digests import digest_order
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
    """:meth:`setup`, :meth:`accept_sender_setup`, :meth:`columns` for each chunk, :meth:`accept_outputs`, :meth:`matches`.

    Everything after the cuckoo table runs a chunk of bins at a time (codewords, columns, transposes,
    own values): small arrays that stay in cache and are reused, not one pass per step over the table.
    """

    def __init__(self, digests: np.ndarray, n_peer: int, out_bytes: int) -> None:
        self.digests = digests
        self.n, self.n_peer, self.out_bytes = digests.shape[0], n_peer, out_bytes
        self.n_bins = n_bins_for(self.n)
        self.session = os.urandom(16)
        self.ot = OtSender()
        self.table = np.full(self.n_bins, -1, dtype=np.int64)  # the item in each bin, -1 when empty
        self._own_values = np.empty((self.n, out_bytes), dtype=np.uint8)  # H(b, i, t_b) of each own item
        self._hits: list[np.ndarray] = []  # (sender position, own item) of matched outputs, chunk by chunk
        self._sent = 0
        self._received = 0
        self._sorted: tuple[np.ndarray, np.ndarray] | None = None
        self._runs = False

    def setup(self) -> ReceiverSetup:
        """Place every item in the cuckoo table (new keys on a failure, locally), start the base OTs."""
        rng = np.random.default_rng(int.from_bytes(os.urandom(8), "big"))
        for _ in range(CUCKOO_TRIES):
            keys = [os.urandom(16) for _ in range(HASHES)]
            candidates = candidate_bins(self.digests, keys, self.n_bins)
            where = insert(candidates, self.n_bins, rng)
            if where is not None:
                self.table[where] = np.arange(self.n, dtype=np.int64)
                self.bin_keys = keys
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
        seeds = self.ot.keys([bytes(p) for p in pts])
        self._code_keys = [bytes(k) for k in keys]
        self._t = Keystreams([k0 for k0, _ in seeds])
        self._t_other = Keystreams([k1 for _, k1 in seeds])

    def chunks(self) -> list[tuple[int, int]]:
        return [(a, min(a + CHUNK_BINS, self.n_bins)) for a in range(0, self.n_bins, CHUNK_BINS)]

    def columns(self, start: int, stop: int) -> Columns:
        """The chunk's columns ``u_i = G(k_i^0) ^ G(k_i^1) ^ c_i`` (chunks in order); keeps
        ``H(b, i, t_b)`` of the items in its bins."""
        if start != self._sent or stop <= start or (stop - start) % 128 or stop > self.n_bins:
            raise ValueError("columns are computed chunk after chunk, in order, 128 bins at a time")
        nbytes = (stop - start) // 8
        t_cols = self._t.next(nbytes)
        in_chunk = self.table[start:stop]
        occupied = np.flatnonzero(in_chunk >= 0)
        items = in_chunk[occupied]
        # an empty bin's codeword is never compared (the receiver may choose any input for it): zeros,
        # not random; the sender's values at an empty bin stay pseudorandom to the receiver either way
        code_rows = np.zeros((stop - start, CODE_BYTES), dtype=np.uint8)
        put_rows(code_rows, occupied, codewords(self._code_keys, take_rows(self.digests, items)))
        u_cols = transpose(code_rows)
        u_cols ^= t_cols
        u_cols ^= self._t_other.next(nbytes)
        t_rows = transpose(t_cols)
        bins = start + occupied
        hashed = fixed_key_hash(take_rows(t_rows, occupied), tweaks(self.session, bins, self.hash_of[items]))
        put_rows(self._own_values, items, hashed[:, : self.out_bytes])
        self._sent = stop
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
            if self._sent != self.n_bins:
                raise RuntimeError("outputs are matched once every chunk of columns (and own value) is computed")
            own_key = self._own_values[:, :8].copy().view("<u8").reshape(-1)
            order = np.argsort(own_key)
            self._sorted = (order, own_key[order])
            # own values sharing their first 8 bytes (about n^2 / 2^65): each must be tried
            self._runs = bool(own_key.size > 1 and np.any(self._sorted[1][1:] == self._sorted[1][:-1]))
        return self._sorted

    def _match_chunk(self, values: np.ndarray, start: int) -> np.ndarray:
        """``(k, 2)`` pairs (sender position, own item) of the chunk's values equal to one of ours."""
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
        if self._runs:  # a run of equal first words: every own value of the run is a candidate
            end = np.searchsorted(sorted_keys, their_sorted[found], side="right")
            extra = [(found[end - at[found] > k], k) for k in range(1, int(np.max(end - at[found], initial=1)))]
            hit = np.concatenate([hit] + [their_order[f] for f, _ in extra])
            own_rows = np.concatenate([own_rows] + [order[at[f] + k] for f, k in extra])
        same = np.all(take_rows(self._own_values, own_rows) == take_rows(flat, hit), axis=1)  # all bytes, not just the first 8
        return np.stack([start + hit[same] // HASHES, own_rows[same]], axis=1).astype(np.int64)

    def matches(self) -> tuple[np.ndarray, np.ndarray]:
        """(own items, the sender's positions) of the shared IDs, own items sorted by ID digest.

        With the hash function in the tweak, an ID's values at its candidate bins all differ, so a
        sender position matches at most one own item, and an own item at most one position, except
        when OPRF outputs collide (probability below 2^-40): reported, never guessed around."""
        pairs = np.concatenate(self._hits) if self._hits else np.empty((0, 2), dtype=np.int64)
        positions, own_items = pairs[:, 0], pairs[:, 1]
        for column in (positions, own_items):
            ordered = np.sort(column)
            if np.any(ordered[1:] == ordered[:-1]):
                raise CryptoError("an ID matched twice: the OPRF outputs collided (probability below 2^-40) or the "
                                  "peer sent repeated values")
        by_digest = digest_order(take_rows(self.digests, own_items))
        return own_items[by_digest], positions[by_digest]
