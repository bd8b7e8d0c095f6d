"""The sender's side of KKRT-PSI: base-OT receiver, the OPRF key rows ``q_j``, its IDs' OPRF values. No channel."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

from misuan.crypto.aes_prg import expand, fixed_key_hash
from misuan.crypto.ot import POINT_BYTES, OtReceiver
from misuan.errors import MalformedMessageError
from misuan.protocols.kkrt.bitmatrix import transpose
from misuan.protocols.kkrt.cuckoo import candidate_bins
from misuan.protocols.kkrt.messages import Columns, Outputs, ReceiverSetup, SenderSetup
from misuan.protocols.kkrt.params import CODE_BITS, CODE_BYTES, HASHES, MAX_ROWS, OUTPUT_CHUNK, n_bins_for
from misuan.protocols.kkrt.receiver import codewords, tweaks

__all__ = ["OprfSender"]


class OprfSender:
    """:meth:`accept_receiver_setup`, :meth:`accept_columns` for each chunk, :meth:`outputs`, :meth:`shared`.

    Its IDs go out in a secret random order (``order``), so the positions the receiver sees tell it
    nothing about the sender's rows.
    """

    def __init__(self, digests: np.ndarray, n_peer: int, out_bytes: int) -> None:
        self.m, self.n_peer, self.out_bytes = digests.shape[0], n_peer, out_bytes
        # a random order from the OS's CSPRNG: sort by random 64-bit keys (a tie, about m^2 / 2^65,
        # only leaves two rows in input order)
        self.order = np.argsort(np.frombuffer(os.urandom(8 * self.m), dtype="<u8")).astype(np.int64)
        self.digests = digests[self.order]
        bits = np.unpackbits(np.frombuffer(os.urandom(CODE_BYTES), dtype=np.uint8))
        self.s_bits = bits  # the OT-extension secret: one choice bit per base OT
        self.s_bytes = np.packbits(bits)
        self.code_keys = [os.urandom(16) for _ in range(CODE_BYTES // 16)]
        self.ot = OtReceiver(bits.tolist())
        self._filled = 0
        # C(y) & s needs nothing from the receiver: computed while it builds its cuckoo table
        self._masked = codewords(self.code_keys, self.digests) & self.s_bytes

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
        self.seeds = self.ot.keys()
        self.q_rows = np.empty((self.n_bins, CODE_BYTES), dtype=np.uint8)
        return SenderSetup(
            np.frombuffer(b"".join(self.code_keys), dtype=np.uint8).reshape(-1, 16),
            np.frombuffer(b"".join(points), dtype=np.uint8).reshape(CODE_BITS, POINT_BYTES),
        )

    def accept_columns(self, msg: Columns) -> None:
        """``q_i = G(k_i^{s_i}) ^ s_i * u_i`` over the chunk, stored as rows ``q_j = t_j ^ (C(x_j) & s)``."""
        u = np.asarray(msg.columns)
        if msg.start != self._filled or u.dtype != np.uint8 or u.ndim != 2 or u.shape[0] != CODE_BITS:
            raise MalformedMessageError(f"OT-extension columns must be uint8 ({CODE_BITS}, bins/8), chunks in order")
        nbytes = u.shape[1]
        if nbytes == 0 or nbytes % 16 or self._filled + 8 * nbytes > self.n_bins:
            raise MalformedMessageError("OT-extension columns beyond the cuckoo table")
        q = np.empty_like(u)
        for i, k in enumerate(self.seeds):
            col = expand(k, self._filled // 8, nbytes)
            q[i] = col ^ u[i] if self.s_bits[i] else col
        self.q_rows[self._filled : self._filled + 8 * nbytes] = transpose(q)
        self._filled += 8 * nbytes

    @property
    def complete(self) -> bool:
        return self._filled == self.n_bins

    def outputs(self) -> Iterator[Outputs]:
        """``F(k_b, y) = H(b, q_b ^ (C(y) & s))`` at each of the IDs' candidate bins, truncated; a chunk
        at a time, so the receiver matches one while the next is computed."""
        bins_all = candidate_bins(self.digests, self._bin_keys, self.n_bins)
        for a in range(0, self.m, OUTPUT_CHUNK):
            b = min(a + OUTPUT_CHUNK, self.m)
            masked = self._masked[a:b]
            values = np.empty((b - a, HASHES, self.out_bytes), dtype=np.uint8)
            for h in range(HASHES):
                bins = bins_all[a:b, h]
                index = np.full(bins.size, h, dtype=np.int64)
                values[:, h, :] = fixed_key_hash(self.q_rows[bins] ^ masked, tweaks(self.session, bins, index))[:, : self.out_bytes]
            yield Outputs(a, values)

    def shared(self, positions: np.ndarray) -> np.ndarray:
        """This party's rows of the positions the receiver matched, sorted by ID digest (the receiver's order)."""
        pos = np.asarray(positions)
        if pos.dtype != np.int64 or pos.ndim != 1 or (pos.size and (pos.min() < 0 or pos.max() >= self.m)):
            raise MalformedMessageError("matched positions must be int64 within the sender's IDs")
        if np.unique(pos).size != pos.size:
            raise MalformedMessageError("matched positions repeat")
        by_digest = np.lexsort(self.digests[pos].T[::-1])
        return self.order[pos[by_digest]]
