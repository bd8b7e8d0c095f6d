"""Shares of ``M x`` mod 2^128 for a matrix one party holds and a vector the other holds: Gilboa's product from OT.

The *matrix side* holds ``M`` (``r x c`` values mod 2^128, :mod:`.u128` word pairs), the *vector
side* ``x`` (``c`` values). Per
bit ``l`` of each ``x_j``, one random 1-out-of-2 OT from IKNP (:mod:`misuan.crypto.ot_extension`, a
fresh extension per product; the matrix side keeps both keys ``K0, K1``); with ``G`` a PRG to ``r``
words, the matrix side sends ``G(K0) - G(K1) + 2^l M[:, j]`` and keeps ``-sum G(K0)``; the vector
side, holding ``K_b`` for its bit ``b``, keeps ``sum G(K_b) + b * (correction)``. The two add up to
``sum_{j,l} b_{j,l} 2^l M[:, j] = M x`` mod 2^128 (Gilboa, CRYPTO 1999; the OT-based multiplication of
MASCOT and of SecureML's offline phase). ``G(K)`` is the fixed-key hash of ``K`` under the tweaks
(use word, word index): a PRG in the ideal-cipher model.

What each side sees: the vector side one correction per OT, each padded by ``G`` of the key it did
not choose (pseudorandom to it); the matrix side the extension's columns (which hide the bits).
Cost: ``bits c`` OTs and ``bits c r`` values of 16 bytes on the wire, ``bits`` (128 unless the
vector's values are known to be shorter) per entry (a 200 x 200 matrix at 128 bits: 25,600 OTs,
82 MB; an inner product, ``r = 1``: 0.4 MB).
Fixed point: ``M`` with ``a`` fractional bits times ``x`` with ``b`` has ``a + b``; the caller
truncates its share mod 2^128 (:func:`misuan.protocols.vertical_lr.shared_vectors.truncate_share`).
"""

from __future__ import annotations

import hashlib

import numpy as np

from misuan.crypto.aes_prg import BLOCK, fixed_key_cipher
from misuan.crypto.ot_extension import ExtensionReceiver, ExtensionSender, chunks_of
from misuan.errors import MalformedMessageError
from misuan.protocols.vertical_lr import u128

__all__ = ["MatrixSide", "VectorSide", "run_extension"]

_DOMAIN = b"misuan-vertical-lr-products-v1"
_BITS = 128


def _expand(keys: np.ndarray, n_values: int, session: bytes) -> np.ndarray:
    """``(len(keys), n_values, 2)`` uint64: ``G(K)`` for each 16-byte key, by fixed-key MMO over the
    key XOR (use word, block index)."""
    n_blocks = n_values
    word = np.frombuffer(hashlib.sha256(_DOMAIN + session).digest()[:8], "<u8")[0]
    tweak = np.zeros((n_blocks, 2), dtype=np.uint64)
    tweak[:, 0] = word
    tweak[:, 1] = np.arange(n_blocks, dtype=np.uint64)
    inputs = keys.view(np.uint64).reshape(-1, 1, 2) ^ tweak[None, :, :]
    out = np.empty(inputs.nbytes + BLOCK, dtype=np.uint8)
    fixed_key_cipher().encrypt_into(inputs.view(np.uint8).reshape(-1), out)
    return out[: inputs.nbytes].view(np.uint64).reshape(inputs.shape) ^ inputs


class VectorSide:
    """The side with ``x``: the extension's receiver (its choice bits are the bits of ``x``), then :meth:`share`."""

    def __init__(self, x: np.ndarray, n_rows: int, session: bytes, bits: int = _BITS) -> None:
        if x.dtype != np.uint64 or x.ndim != 2 or x.shape[1] != 2 or not 1 <= bits <= _BITS:
            raise ValueError("the vector is (c, 2) uint64 word pairs, of at most 128 bits")
        self.n_rows, self.session = n_rows, session
        shifts = np.arange(64, dtype=np.uint64)
        every = ((x[:, :, None] >> shifts) & np.uint64(1)).astype(np.uint8).reshape(len(x), _BITS)  # low word first
        if every[:, bits:].any():
            raise ValueError(f"a vector value has more than {bits} bits")
        self.bits = every[:, :bits].reshape(-1)
        self.extension = ExtensionReceiver(self.bits, session)

    def share(self, corrections: np.ndarray) -> np.ndarray:
        """This side's share of ``M x`` (``(r, 2)`` uint64) from the matrix side's corrections."""
        n = len(self.bits)
        if not isinstance(corrections, np.ndarray) or corrections.dtype != np.uint64 \
                or corrections.shape != (n, self.n_rows, 2):
            raise MalformedMessageError(f"product corrections must be uint64 ({n}, {self.n_rows}, 2)")
        if not self.extension.complete:
            raise RuntimeError("the OT extension's columns come first")
        pads = _expand(self.extension.keys[:n], self.n_rows, self.session)
        chosen = self.bits.astype(bool)
        pads[chosen] = u128.add(pads[chosen], corrections[chosen])
        return u128.sum_rows(pads)


class MatrixSide:
    """The side with ``M``: the extension's sender (both keys kept), then :meth:`corrections`."""

    def __init__(self, matrix: np.ndarray, n_cols: int, session: bytes, bits: int = _BITS) -> None:
        if matrix.dtype != np.uint64 or matrix.ndim != 3 or matrix.shape[1:] != (n_cols, 2):
            raise ValueError(f"the matrix is (r, {n_cols}, 2) uint64 word pairs")
        self.matrix, self.session, self.bits = matrix, session, bits
        self.extension = ExtensionSender(n_cols * bits, session, both_keys=True)

    def corrections(self) -> tuple[np.ndarray, np.ndarray]:
        """The corrections to send (``(bits c, r, 2)`` uint64) and this side's share of ``M x`` (``(r, 2)``)."""
        if not self.extension.complete:
            raise RuntimeError("the OT extension's columns come first")
        r, c = self.matrix.shape[:2]
        n = c * self.bits
        g0 = _expand(self.extension.keys0[:n], r, self.session)
        g1 = _expand(self.extension.keys[:n], r, self.session)
        # 2^l M[:, j] for every l, by doubling: (c, bits, r, 2)
        shifted = np.empty((c, self.bits, r, 2), dtype=np.uint64)
        lo, hi = self.matrix[:, :, 0].T.copy(), self.matrix[:, :, 1].T.copy()
        for bit in range(self.bits):
            shifted[:, bit, :, 0], shifted[:, bit, :, 1] = lo, hi
            hi = (hi << np.uint64(1)) | (lo >> np.uint64(63))
            lo = lo << np.uint64(1)
        return u128.add(u128.sub(g0, g1), shifted.reshape(n, r, 2)), u128.neg(u128.sum_rows(g0))


def run_extension(matrix_side: MatrixSide, vector_side: VectorSide) -> None:
    """Both sides' OT extension in one process (tests and the in-process driver)."""
    s, rcv = matrix_side.extension, vector_side.extension
    rcv.accept_base_points(s.base_points(rcv.base_message))
    for a, b in chunks_of(rcv.n):
        s.accept_columns(a, rcv.columns(a, b))
