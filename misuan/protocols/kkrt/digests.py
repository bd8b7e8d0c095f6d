"""The 16-byte digest of each normalised ID that KKRT-PSI works on, and the orders and checks on them.

Every use of a digest is a PRF under fresh keys (cuckoo bins, codewords, buckets), so a digest need
only be equal for equal IDs and, except with negligible probability, different for different IDs.
Hashing each ID with hashlib costs about 0.8 s per million IDs in Python calls, so instead:

1. :func:`encode_ids` writes each normalised ID **injectively** into ``ENCODED_BYTES`` = 48 bytes:
   an ID of at most 47 bytes as its bytes, zero padding and its length in the last byte (1-47); a
   longer one (rare: IDs are card, account, phone or ID-card numbers, UUIDs) as its BLAKE2b-256
   hash, zero padding and 255 in the last byte. Vectorised, about 0.15 s per million IDs.
2. :func:`digests_of` is CBC-MAC with AES-128 over those three blocks, keyed per session by both
   parties' hello nonces: a PRF on fixed-length inputs (Bellare, Kilian, Rogaway 1994), so two of
   ``n`` distinct IDs fixed before the run share a digest with probability about ``n^2 / 2^128``.
   Both parties know the key once the hellos are exchanged, so it is not collision resistance
   against them (a party could build an ID colliding with one it knows, which gains it nothing it
   could not get by holding that ID), but nobody outside a run, a customer registering an ID
   included, can aim at a collision. Three AES calls over the whole array.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence

import numpy as np

from misuan.crypto.aes_prg import prf
from misuan.errors import DuplicateIdError

__all__ = ["DIGEST_BYTES", "ENCODED_BYTES", "check_unique", "digest_order", "digests_of", "dummies", "encode_ids"]

DIGEST_BYTES = 16
ENCODED_BYTES = 48
_RAW = ENCODED_BYTES - 1  # IDs up to this many bytes are written as they are
_HASHED = 255  # the last byte of a long ID's encoding
_CHUNK = 1 << 16  # rows per AES pass of digests_of (1 MiB of digests)


def encode_ids(values: Sequence[bytes] | Sequence[str]) -> np.ndarray:
    """``(n, ENCODED_BYTES)`` uint8: each normalised ID's injective encoding (see the module docstring).

    ``values``: the UTF-8 bytes of each ID, or the IDs as ``str`` when all are ASCII (the same bytes;
    NumPy writes them without a ``bytes`` object per ID)."""
    n = len(values)
    out = np.zeros((n, ENCODED_BYTES), dtype=np.uint8)
    if n == 0:
        return out
    if isinstance(values[0], str) and not "".join(values).isascii():  # type: ignore[arg-type]
        values = [_utf8(v) for v in values]  # lengths and bytes of UTF-8, not of characters
    lengths = np.fromiter(map(len, values), dtype=np.int64, count=n)
    short = lengths <= _RAW
    rows = np.flatnonzero(short)
    if rows.size:
        picked = values if rows.size == n else [values[i] for i in rows.tolist()]
        width = max(int(np.max(lengths[rows])), 1)
        # a fixed-width bytes array holds each ID's bytes then zeros (an ID's own trailing NULs too:
        # the length byte tells them apart)
        fixed = np.array(picked, dtype=f"S{width}").view(np.uint8).reshape(-1, width)
        if rows.size == n:
            out[:, :width] = fixed
            out[:, _RAW] = lengths
        else:
            out[rows, :width] = fixed
            out[rows, _RAW] = lengths[rows]
    long_rows = np.flatnonzero(~short).tolist()
    if long_rows:
        blob = b"".join([hashlib.blake2b(_utf8(values[i]), digest_size=32).digest() for i in long_rows])
        out[long_rows, :32] = np.frombuffer(blob, dtype=np.uint8).reshape(-1, 32)
        out[long_rows, _RAW] = _HASHED
    return out


def _utf8(value: bytes | str) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def digests_of(encoded: np.ndarray, key: bytes) -> np.ndarray:
    """``(n, 16)`` uint8 CBC-MAC under ``key`` of each encoded ID (``(n, ENCODED_BYTES)``, :func:`encode_ids`)."""
    if encoded.ndim != 2 or encoded.shape[1] != ENCODED_BYTES:
        raise ValueError(f"encoded IDs are ({ENCODED_BYTES},) uint8 rows")
    out = np.empty((encoded.shape[0], DIGEST_BYTES), dtype=np.uint8)
    for a in range(0, encoded.shape[0], _CHUNK):  # a chunk at a time: no whole-set temporaries
        rows = encoded[a : a + _CHUNK]
        h = prf(key, rows[:, :DIGEST_BYTES])
        for b in range(DIGEST_BYTES, ENCODED_BYTES, DIGEST_BYTES):
            h = prf(key, np.bitwise_xor(h, rows[:, b : b + DIGEST_BYTES]))
        out[a : a + rows.shape[0]] = h
    return out


def dummies(k: int) -> np.ndarray:
    """``k`` random digests, to pad a bucket (one equals a real digest with probability 2^-128)."""
    return np.frombuffer(os.urandom(DIGEST_BYTES * k), dtype=np.uint8).reshape(k, DIGEST_BYTES)


def _words(digests: np.ndarray) -> np.ndarray:
    """Each digest as two big-endian 64-bit words: their order is the digests' byte order."""
    return np.ascontiguousarray(digests, dtype=np.uint8).view(">u8").reshape(-1, 2).astype(np.uint64)


def digest_order(digests: np.ndarray) -> np.ndarray:
    """The permutation that sorts ``digests`` by their bytes: how both parties order the shared IDs.

    One sort by the first 8 bytes; only when two digests share them (equal digests, or 2^-64 a pair)
    the slower sort by both words."""
    if digests.shape[0] == 0:
        return np.empty(0, dtype=np.int64)
    w = _words(digests)
    order = np.argsort(w[:, 0])
    first = w[order, 0]
    if np.any(first[1:] == first[:-1]):
        order = np.lexsort((w[:, 1], w[:, 0]))
    return order.astype(np.int64)


def check_unique(encoded: np.ndarray) -> None:
    """Raise :class:`DuplicateIdError` naming the rows when two encoded IDs (so two normalised IDs) are equal.

    Compares digests under a key of this check's own, then confirms each equal pair byte for byte.
    """
    if encoded.shape[0] < 2:
        return
    digests = digests_of(encoded, os.urandom(16))
    head = np.sort(digests.view(np.uint64)[:, 0])  # any fixed 8 bytes will do for equality
    if not np.any(head[1:] == head[:-1]):  # the common case: one sort, no index
        return
    del head
    order = digest_order(digests)
    w = _words(digests)[order]
    same = np.flatnonzero(np.all(w[1:] == w[:-1], axis=1)).tolist()
    dup = [i for i in same if np.array_equal(encoded[order[i]], encoded[order[i + 1]])]
    if dup:
        rows = sorted({int(order[i]) for i in dup} | {int(order[i + 1]) for i in dup})
        shown = ", ".join(str(r) for r in rows[:10]) + (" ..." if len(rows) > 10 else "")
        raise DuplicateIdError(f"rows {shown} repeat an ID after normalisation: deduplicate the ID column before PSI")
