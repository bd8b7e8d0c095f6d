"""Shares of ``M x`` for a matrix one party holds and a vector the other holds: Gilboa's product from OT.

The *matrix side* holds ``M`` (``r x c`` words mod 2^64), the *vector side* ``x`` (``c`` words). Per
bit ``l`` of each ``x_j``, one random 1-out-of-2 OT from IKNP (:mod:`misuan.crypto.ot_extension`, a
fresh extension per product; the matrix side keeps both keys ``K0, K1``); with ``G`` a PRG to ``r``
words, the matrix side sends ``G(K0) - G(K1) + 2^l M[:, j]`` and keeps ``-sum G(K0)``; the vector
side, holding ``K_b`` for its bit ``b``, keeps ``sum G(K_b) + b * (correction)``. The two add up to
``sum_{j,l} b_{j,l} 2^l M[:, j] = M x`` mod 2^64 (Gilboa, CRYPTO 1999; the OT-based multiplication of
MASCOT and of SecureML's offline phase). ``G(K)`` is the fixed-key hash of ``K`` under the tweaks
(use word, word index): a PRG in the ideal-cipher model.

What each side sees: the vector side one correction per OT, each padded by ``G`` of the key it did
not choose (pseudorandom to it); the matrix side the extension's columns (which hide the bits).
Cost: ``64 c`` OTs and ``64 c r`` words on the wire (a 200 x 200 matrix: 12,800 OTs, 20 MB).
Fixed point: ``M`` with ``a`` fractional bits times ``x`` with ``b`` has ``a + b``; the caller
truncates (:func:`misuan.protocols.vertical_lr.ring.truncate`).
"""

from __future__ import annotations

import hashlib

import numpy as np

from misuan.crypto.aes_prg import BLOCK, fixed_key_cipher
from misuan.crypto.ot_extension import ExtensionReceiver, ExtensionSender, chunks_of
from misuan.errors import MalformedMessageError

__all__ = ["MatrixSide", "VectorSide", "run_extension"]

_DOMAIN = b"misuan-vertical-lr-products-v1"
_WORD_BITS = 64


def _expand(keys: np.ndarray, n_words: int, session: bytes) -> np.ndarray:
    """``(len(keys), n_words)`` uint64: ``G(K)`` for each 16-byte key, by fixed-key MMO over the key
    XOR (use word, block index)."""
    n_blocks = -(-n_words // 2)
    word = np.frombuffer(hashlib.sha256(_DOMAIN + session).digest()[:8], "<u8")[0]
    tweak = np.zeros((n_blocks, 2), dtype=np.uint64)
    tweak[:, 0] = word
    tweak[:, 1] = np.arange(n_blocks, dtype=np.uint64)
    inputs = keys.view(np.uint64).reshape(-1, 1, 2) ^ tweak[None, :, :]
    out = np.empty(inputs.nbytes + BLOCK, dtype=np.uint8)
    fixed_key_cipher().encrypt_into(inputs.view(np.uint8).reshape(-1), out)
    words = out[: inputs.nbytes].view(np.uint64).reshape(inputs.shape) ^ inputs
    return words.reshape(len(keys), -1)[:, :n_words]


class VectorSide:
    """The side with ``x``: the extension's receiver (its choice bits are the bits of ``x``), then :meth:`share`."""

    def __init__(self, x: np.ndarray, n_rows: int, session: bytes) -> None:
        if x.dtype != np.uint64 or x.ndim != 1:
            raise ValueError("the vector is 1-D uint64")
        self.x, self.n_rows, self.session = x, n_rows, session
        bits = ((x[:, None] >> np.arange(_WORD_BITS, dtype=np.uint64)) & np.uint64(1)).astype(np.uint8)
        self.bits = bits.reshape(-1)
        self.extension = ExtensionReceiver(self.bits, session)

    def share(self, corrections: np.ndarray) -> np.ndarray:
        """This side's share of ``M x`` (``(r,)`` uint64) from the matrix side's corrections."""
        n = len(self.bits)
        if not isinstance(corrections, np.ndarray) or corrections.dtype != np.uint64 or corrections.shape != (n, self.n_rows):
            raise MalformedMessageError(f"product corrections must be uint64 ({n}, {self.n_rows})")
        if not self.extension.complete:
            raise RuntimeError("the OT extension's columns come first")
        pads = _expand(self.extension.keys[:n], self.n_rows, self.session)
        chosen = self.bits.astype(bool)
        pads[chosen] += corrections[chosen]
        return pads.sum(axis=0, dtype=np.uint64)


class MatrixSide:
    """The side with ``M``: the extension's sender (both keys kept), then :meth:`corrections`."""

    def __init__(self, matrix: np.ndarray, n_cols: int, session: bytes) -> None:
        if matrix.dtype != np.uint64 or matrix.ndim != 2 or matrix.shape[1] != n_cols:
            raise ValueError(f"the matrix is 2-D uint64 with {n_cols} columns")
        self.matrix, self.session = matrix, session
        self.extension = ExtensionSender(n_cols * _WORD_BITS, session, both_keys=True)

    def corrections(self) -> tuple[np.ndarray, np.ndarray]:
        """The corrections to send (``(64 c, r)`` uint64) and this side's share of ``M x`` (``(r,)``)."""
        if not self.extension.complete:
            raise RuntimeError("the OT extension's columns come first")
        r, c = self.matrix.shape
        n = c * _WORD_BITS
        g0 = _expand(self.extension.keys0[:n], r, self.session)
        g1 = _expand(self.extension.keys[:n], r, self.session)
        shifted = (self.matrix.T[:, None, :] << np.arange(_WORD_BITS, dtype=np.uint64)[None, :, None]).reshape(n, r)
        return g0 - g1 + shifted, np.uint64(0) - g0.sum(axis=0, dtype=np.uint64)


def run_extension(matrix_side: MatrixSide, vector_side: VectorSide) -> None:
    """Both sides' OT extension in one process (tests and the in-process driver)."""
    s, rcv = matrix_side.extension, vector_side.extension
    rcv.accept_base_points(s.base_points(rcv.base_message))
    for a, b in chunks_of(rcv.n):
        s.accept_columns(a, rcv.columns(a, b))
