"""Transposing bit matrices: OT extension's columns (one per base OT) to rows (one per bin).

A matrix of ``w`` rows and ``8*nb`` bit columns is stored as ``(w, nb)`` uint8, bits MSB first
(bit ``j`` of a row is bit ``7 - j % 8`` of byte ``j // 8``, as :func:`numpy.packbits` writes).
:func:`transpose` returns the ``(8*nb, w // 8)`` matrix of its transpose in the same layout. It
works on 8x8 bit blocks held in 64-bit words (three masked shift rounds, Hacker's Delight 7-3),
about ten times faster than unpacking to one byte per bit.
"""

from __future__ import annotations

import numpy as np

__all__ = ["transpose"]

_ROUNDS = (
    (7, np.uint64(0x00AA00AA00AA00AA)),
    (14, np.uint64(0x0000CCCC0000CCCC)),
    (28, np.uint64(0x00000000F0F0F0F0)),
)


def transpose(cols: np.ndarray) -> np.ndarray:
    """The transpose of the bit matrix ``cols`` (``(w, nb)`` uint8, ``w`` a multiple of 8)."""
    w, nb = cols.shape
    if w % 8:
        raise ValueError("the number of rows must be a multiple of 8")
    r = w // 8
    # blocks of 8 rows x 8 columns, the block's first row in the most significant byte of a
    # little-endian 64-bit word (rows reversed on the way in: no byte swap afterwards; native, so
    # fast, on x86-64 and ARM): (row block, column byte)
    x = np.ascontiguousarray(cols.reshape(r, 8, nb)[:, ::-1, :].transpose(0, 2, 1)).view("<u8").reshape(-1)
    t, u = np.empty_like(x), np.empty_like(x)
    for shift, mask in _ROUNDS:  # in place: each temporary would be a fresh pass over memory
        s = np.uint64(shift)
        np.right_shift(x, s, out=t)
        np.bitwise_xor(t, x, out=t)
        np.bitwise_and(t, mask, out=t)
        np.left_shift(t, s, out=u)
        np.bitwise_xor(x, t, out=x)
        np.bitwise_xor(x, u, out=x)
    # word (row block b, column byte c) holds output rows 8c..8c+7, byte b each, the first row in the
    # most significant byte: gather the words of one column byte together first (8-byte moves), then
    # transpose bytes within that block
    words = np.ascontiguousarray(x.reshape(r, nb).T).view(np.uint8).reshape(nb, r, 8)  # "<u8": byte 0 least significant
    return np.ascontiguousarray(words[:, :, ::-1].transpose(0, 2, 1)).reshape(nb * 8, r)
