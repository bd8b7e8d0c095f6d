"""Fixed point in Z/2^64: a real ``x`` is ``round(x * 2^frac_bits) mod 2^64`` (two's complement), and a
secret is a pair of uniformly random-looking words that add up to it mod 2^64 (additive shares)."""

from __future__ import annotations

import os

import numpy as np

from misuan.errors import DataError

__all__ = ["decode", "encode", "random_words", "split", "truncate"]


def encode(x: np.ndarray, frac_bits: int) -> np.ndarray:
    """``x`` (float) in fixed point, uint64; refuses values that do not fit with 2 bits to spare."""
    a = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise DataError("a value to encode in fixed point is NaN or infinite")
    scaled = np.rint(a * 2.0**frac_bits)
    if scaled.size and float(np.max(np.abs(scaled))) >= 2.0**61:
        raise DataError(f"a value of magnitude {float(np.max(np.abs(a))):.3g} does not fit 64-bit fixed point "
                        f"with {frac_bits} fractional bits")
    return scaled.astype(np.int64).view(np.uint64)


def decode(words: np.ndarray, frac_bits: int) -> np.ndarray:
    """Fixed-point words (uint64, two's complement) as float64."""
    return np.asarray(words, dtype=np.uint64).view(np.int64).astype(np.float64) * 2.0**-frac_bits


def random_words(shape: int | tuple[int, ...]) -> np.ndarray:
    """Uniform uint64 words from the OS's CSPRNG."""
    n = int(np.prod(shape))
    return np.frombuffer(os.urandom(8 * n), dtype=np.uint64).reshape(shape).copy()


def split(words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two additive shares of ``words``: a uniform one and the rest."""
    r = random_words(words.shape)
    return r, words - r


def truncate(share: np.ndarray, bits: int, first: bool) -> np.ndarray:
    """A share of ``x / 2^bits`` from a share of ``x``, locally (SecureML's truncation): the first
    party shifts its share, the second the negation of its share. Off by at most one unit in the last
    place, except with probability about ``|x| / 2^64`` per value (``x`` as the raw integer), when
    the result is garbage: the probabilistic truncation of SecureML and of SPU's semi2k on a 64-bit
    ring, so values to truncate stay below 2^36 (a failure ~2^-28 a value)."""
    s = np.asarray(share, dtype=np.uint64)
    if first:
        return s >> np.uint64(bits)
    return np.uint64(0) - ((np.uint64(0) - s) >> np.uint64(bits))
