"""Arithmetic mod 2^128 on NumPy arrays of ``(..., 2)`` uint64 words ``[low, high]``, and conversions.

The per-row work of vertical LR runs mod 2^64 (scores, probabilities); what is summed over rows
(gradients) and the optimiser's small vectors run mod 2^128, so that fixed-point products keep 60
bits of headroom and local truncation fails with probability ``|x| / 2^128`` (negligible) instead
of ``|x| / 2^64``. Small vectors (one word per bin) also convert to Python integers, exactly.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MOD", "add", "bin_sums", "from_ints", "neg", "segment_sums", "shl", "sub", "sum_rows", "to_ints", "widen"]

MOD = 1 << 128
_LOW = np.uint64(0xFFFFFFFF)


def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lo = a[..., 0] + b[..., 0]
    hi = a[..., 1] + b[..., 1] + (lo < a[..., 0]).astype(np.uint64)
    return np.stack([lo, hi], axis=-1)


def neg(a: np.ndarray) -> np.ndarray:
    lo = np.uint64(0) - a[..., 0]
    hi = np.uint64(0) - a[..., 1] - (a[..., 0] != 0).astype(np.uint64)
    return np.stack([lo, hi], axis=-1)


def sub(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return add(a, neg(b))


def shl(a: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """``a << bits`` mod 2^128, ``bits`` (0..127) broadcast against ``a[..., 0]``."""
    b = np.broadcast_to(np.asarray(bits, dtype=np.uint64), a[..., 0].shape)
    lo, hi = a[..., 0], a[..., 1]
    small = b < 64
    s = np.where(small, b, 0).astype(np.uint64)
    carry = np.where(s == 0, np.uint64(0), lo >> np.where(s == 0, np.uint64(1), np.uint64(64) - s))
    out_lo = np.where(small, lo << s, np.uint64(0))
    out_hi = np.where(small, (hi << s) | carry, lo << np.where(small, np.uint64(0), b - np.uint64(64)))
    return np.stack([out_lo, out_hi], axis=-1)


def sum_rows(a: np.ndarray, axis: int = 0) -> np.ndarray:
    """The sum mod 2^128 along ``axis`` (of the word axes before the last), exact for up to 2^32 terms:
    four 32-bit limbs summed in uint64, then the carries propagated."""
    v = _limb_view(a)
    if v is not None:
        sums = v.sum(axis=axis, dtype=np.uint64)
        return _carry([sums[..., k] for k in range(4)])
    return _carry([x.sum(axis=axis, dtype=np.uint64) for x in _limbs(a)])


def widen(words: np.ndarray, signed: bool) -> np.ndarray:
    """64-bit words as 128-bit values: sign-extended (``signed``) or zero-extended."""
    hi = np.where(words >= np.uint64(1 << 63), np.uint64(0xFFFFFFFFFFFFFFFF), np.uint64(0)) if signed \
        else np.zeros_like(words)
    return np.stack([words, hi], axis=-1)


def to_ints(a: np.ndarray) -> list[int]:
    """Flat list of Python integers in ``[0, 2^128)``."""
    flat = a.reshape(-1, 2)
    return [int(lo) | (int(hi) << 64) for lo, hi in flat]


def from_ints(values: list[int] | np.ndarray) -> np.ndarray:
    """``(n, 2)`` words of integers (any sign; reduced mod 2^128)."""
    vs = [int(v) % MOD for v in values]
    out = np.empty((len(vs), 2), dtype=np.uint64)
    for i, v in enumerate(vs):
        out[i, 0] = v & 0xFFFFFFFFFFFFFFFF
        out[i, 1] = v >> 64
    return out


def _limbs(a: np.ndarray) -> list[np.ndarray]:
    return [a[..., 0] & _LOW, a[..., 0] >> np.uint64(32), a[..., 1] & _LOW, a[..., 1] >> np.uint64(32)]


def _limb_view(a: np.ndarray) -> np.ndarray | None:
    """``(..., 4)`` uint32: the four 32-bit limbs of each value, low first, without a copy (a
    little-endian machine and words contiguous in pairs), else None."""
    if not np.little_endian or a.dtype != np.uint64 or a.shape[-1] != 2 or a.strides[-1] != 8 \
            or (a.ndim > 1 and a.strides[-2] != 16):
        return None
    return a.view(np.uint32)


def _carry(sums: list[np.ndarray]) -> np.ndarray:
    carry = np.zeros_like(sums[0])
    parts = []
    for s in sums:
        t = s + carry
        parts.append(t & _LOW)
        carry = t >> np.uint64(32)
    return np.stack([parts[0] | (parts[1] << np.uint64(32)), parts[2] | (parts[3] << np.uint64(32))], axis=-1)


def segment_sums(a: np.ndarray, starts: np.ndarray, axis: int) -> np.ndarray:
    """Sums mod 2^128 of the segments of ``axis`` that begin at ``starts`` (``np.add.reduceat``)."""
    v = _limb_view(a)
    if v is not None:
        sums = np.add.reduceat(v, starts, axis=axis, dtype=np.uint64)
        return _carry([sums[..., k] for k in range(4)])
    return _carry([np.add.reduceat(x, starts, axis=axis, dtype=np.uint64) for x in _limbs(a)])


def bin_sums(cells: np.ndarray, a: np.ndarray, width: int) -> np.ndarray:
    """``(width, 2)``: the sum mod 2^128 of ``a`` (``(..., 2)``) where ``cells`` (same leading shape)
    is each cell index; limbs summed in float64, exact for up to 2^21 terms a call."""
    flat = cells.reshape(-1)
    if a.shape[:-1] != cells.shape:  # one value per row, into each of the row's cells
        a = np.broadcast_to(a.reshape(a.shape[:-1] + (1,) * (cells.ndim - a.ndim + 1) + (2,)), cells.shape + (2,))
    v = _limb_view(a)
    limbs = _limbs(a) if v is None else [v[..., k] for k in range(4)]
    sums = [np.bincount(flat, weights=x.reshape(-1).astype(np.float64), minlength=width).astype(np.uint64)
            for x in limbs]
    return _carry(sums)


def shr(a: np.ndarray, bits: int) -> np.ndarray:
    """``a >> bits`` (logical, ``0 < bits < 64``)."""
    b = np.uint64(bits)
    return np.stack([(a[..., 0] >> b) | (a[..., 1] << np.uint64(64 - bits)), a[..., 1] >> b], axis=-1)


def truncate(a: np.ndarray, bits: int, first: bool) -> np.ndarray:
    """A share of ``x / 2^bits`` from a share of ``x`` mod 2^128 (SecureML's local truncation: the
    first party shifts its share, the second the negation of its share; wrong with probability about
    ``|x| / 2^128``)."""
    return shr(a, bits) if first else neg(shr(neg(a), bits))


def mul_small(a: np.ndarray, k: np.ndarray) -> np.ndarray:
    """``a * k`` mod 2^128 for ``k`` below 2^31 (broadcast against ``a[..., 0]``)."""
    k64 = np.asarray(k, dtype=np.uint64)
    parts = [a[..., 0] & _LOW, a[..., 0] >> np.uint64(32), a[..., 1] & _LOW, a[..., 1] >> np.uint64(32)]
    products = [p * k64 for p in parts]  # each below 2^63
    return _carry_products(products)


def _carry_products(products: list[np.ndarray]) -> np.ndarray:
    """Limb products (each below 2^63, limb i weighing 2^(32 i)) combined mod 2^128."""
    carry = np.zeros_like(products[0])
    parts = []
    for p in products:
        t = (p & _LOW) + carry
        parts.append(t & _LOW)
        carry = (p >> np.uint64(32)) + (t >> np.uint64(32))
    return np.stack([parts[0] | (parts[1] << np.uint64(32)), parts[2] | (parts[3] << np.uint64(32))], axis=-1)
