"""The sender's side of KKRT-PSI: base-OT receiver, the OPRF key rows ``q_j``, its IDs' OPRF values. No channel."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

from misuan.crypto.aes_prg import Keystreams, fixed_key_hash
from misuan.crypto.bitmatrix import transpose
from misuan.crypto.ot import POINT_BYTES, OtReceiver
from misuan.crypto.rows import put_rows, take_rows
from misuan.errors import MalformedMessageError
from misuan.protocols.kkrt.cuckoo import candidate_bins
from misuan.protocols.kkrt.digests import digest_order
from misuan.protocols.kkrt.messages import Columns, Outputs, ReceiverSetup, SenderSetup
from misuan.protocols.kkrt.params import (
    CHUNK_BINS,
    CODE_BITS,
    CODE_BYTES,
    HASHES,
    MAX_ROWS,
    OUTPUT_CHUNK,
    n_bins_for,
)
from misuan.protocols.kkrt.receiver import codewords, tweaks

__all__ = ["OprfSender"]


class OprfSender:
    """:meth:`accept_receiver_setup`, :meth:`accept_columns` for each chunk, :meth:`outputs`, :meth:`shared`.

    Its IDs go out in a secret random order (``order``), so the positions the receiver sees tell it
    nothing about the sender's rows. The OPRF values are computed as the columns arrive: each chunk
    of rows ``q_j`` serves every (ID, hash function) whose candidate bin lies in it, and is dropped.
    """

    def __init__(self, digests: np.ndarray, n_peer: int, out_bytes: int) -> None:
        self.m, self.n_peer, self.out_bytes = digests.shape[0], n_peer, out_bytes
        # a random order from the OS's CSPRNG: sort by random 64-bit keys (a tie, about m^2 / 2^65,
        # only leaves two rows in input order)
        self.order = np.argsort(np.frombuffer(os.urandom(8 * self.m), dtype="<u8")).astype(np.int64)
        self.digests = take_rows(digests, self.order)
        bits = np.unpackbits(np.frombuffer(os.urandom(CODE_BYTES), dtype=np.uint8))
        self.s_bits = bits  # the OT-extension secret: one choice bit per base OT
        self.s_bytes = np.packbits(bits)
        self._s_mask = (bits * np.uint8(0xFF))[:, None]  # column i of u is taken where s_i = 1
        self.code_keys = [os.urandom(16) for _ in range(CODE_BYTES // 16)]
        self.ot = OtReceiver(bits.tolist())
        self._masked = np.empty((0, CODE_BYTES), dtype=np.uint8)
        self._filled = 0
        self._by_bin: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        # F(k_b, y) of (ID in the random order, hash function): the outputs, filled chunk by chunk
        self.values = np.empty((self.m, HASHES, out_bytes), dtype=np.uint8)

    def accept_receiver_setup(self, msg: ReceiverSetup) -> SenderSetup:
        keys, a_pt, session = np.asarray(msg.bin_keys), np.asarray(msg.base_ot), np.asarray(msg.session)
        if not (isinstance(msg.n_bins, int) and msg.n_bins == n_bins_for(self.n_peer) and msg.n_bins <= 2 * MAX_ROWS):
            raise MalformedMessageError(f"the cuckoo table must have {n_bins_for(self.n_peer)} bins for {self.n_peer} IDs")
        if any(x.dtype != np.uint8 for x in (keys, a_pt, session)) or keys.shape != (HASHES, 16) \
                or a_pt.shape != (POINT_BYTES,) or session.shape != (16,):
            raise MalformedMessageError("malformed receiver setup (hash keys, base-OT point or session)")
        self.n_bins, self.session = msg.n_bins, bytes(session)
        self._bin_keys = [bytes(k) for k in keys]  # its IDs' bins are computed once the answer is out
        points = self.ot.points(bytes(a_pt))
        self._g = Keystreams(self.ot.keys())
        return SenderSetup(
            np.frombuffer(b"".join(self.code_keys), dtype=np.uint8).reshape(-1, 16),
            np.frombuffer(b"".join(points), dtype=np.uint8).reshape(CODE_BITS, POINT_BYTES),
        )

    def prepare(self) -> None:
        """What needs the receiver's setup but nothing more: run once the answer to it is sent, while
        the receiver derives its base-OT keys. ``C(y) & s`` of every ID, and the (ID, hash function)
        pairs as flat indices ``HASHES * id + h`` grouped by the chunk of their candidate bin."""
        if self._by_bin is not None:
            return
        self._masked = codewords(self.code_keys, self.digests)
        np.bitwise_and(self._masked, self.s_bytes, out=self._masked)
        bins = candidate_bins(self.digests, self._bin_keys, self.n_bins).reshape(-1)
        n_chunks = -(-self.n_bins // CHUNK_BINS)
        chunk = (bins // CHUNK_BINS).astype(np.uint16 if n_chunks < 1 << 16 else np.uint32)
        pairs = np.argsort(chunk, kind="stable")  # a radix sort of small keys
        edges = np.concatenate([[0], np.cumsum(np.bincount(chunk, minlength=n_chunks))]).astype(np.int64)
        self._by_bin = (pairs, bins[pairs], edges)

    def accept_columns(self, msg: Columns) -> None:
        """``q_i = G(k_i^{s_i}) ^ s_i * u_i`` over the chunk; as rows ``q_j = t_j ^ (C(x_j) & s)``, and
        ``F(b, i, y) = H(b, i, q_b ^ (C(y) & s))`` of every (ID, hash function) whose bin ``b`` is in the chunk."""
        u = np.asarray(msg.columns)
        if msg.start != self._filled or u.dtype != np.uint8 or u.ndim != 2 or u.shape[0] != CODE_BITS:
            raise MalformedMessageError(f"OT-extension columns must be uint8 ({CODE_BITS}, bins/8), chunks in order")
        nbytes = u.shape[1]
        stop = self._filled + 8 * nbytes
        if nbytes == 0 or nbytes % 16 or stop > self.n_bins or (stop % CHUNK_BINS and stop != self.n_bins):
            raise MalformedMessageError(f"OT-extension columns beyond the cuckoo table or not in chunks of {CHUNK_BINS} bins")
        q = self._g.next(nbytes) ^ (u & self._s_mask)
        q_rows = transpose(q)
        self.prepare()
        assert self._by_bin is not None
        pairs, bins, edges = self._by_bin
        lo, hi = edges[self._filled // CHUNK_BINS], edges[-(-stop // CHUNK_BINS)]
        here, at = pairs[lo:hi], bins[lo:hi]
        masked = take_rows(self._masked, here // HASHES)
        masked ^= take_rows(q_rows, at - self._filled)
        hashed = fixed_key_hash(masked, tweaks(self.session, at, here % HASHES))
        put_rows(self.values.reshape(-1, self.out_bytes), here, hashed[:, : self.out_bytes])
        self._filled = stop

    @property
    def complete(self) -> bool:
        return self._filled == self.n_bins

    def outputs(self) -> Iterator[Outputs]:
        """The OPRF values at each of the IDs' candidate bins, truncated, in the random order: a
        chunk of IDs per message, so the receiver matches one while the next is on the wire."""
        if not self.complete:
            raise RuntimeError("the OPRF values are complete once every chunk of columns has arrived")
        for a in range(0, self.m, OUTPUT_CHUNK):
            yield Outputs(a, self.values[a : min(a + OUTPUT_CHUNK, self.m)])

    def shared(self, positions: np.ndarray) -> np.ndarray:
        """This party's rows of the positions the receiver matched, sorted by ID digest (the receiver's order)."""
        pos = np.asarray(positions)
        if pos.dtype != np.int64 or pos.ndim != 1 or (pos.size and (pos.min() < 0 or pos.max() >= self.m)):
            raise MalformedMessageError("matched positions must be int64 within the sender's IDs")
        ordered = np.sort(pos)
        if np.any(ordered[1:] == ordered[:-1]):
            raise MalformedMessageError("matched positions repeat")
        return self.order[pos[digest_order(self.digests[pos])]]
