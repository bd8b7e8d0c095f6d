"""Shamir secret sharing over the prime field GF(2^521 - 1), for 32-byte secrets.

Shares are evaluations of a random polynomial of degree ``threshold - 1`` whose constant term is the
secret, at ``x = 1 .. n`` (a party's index in the sorted list of data parties, plus one); any
``threshold`` of them give the secret back by Lagrange interpolation at 0, fewer reveal nothing
about it (information-theoretically). The field is big enough for any 32-byte secret; its arithmetic
is Python's own integers (``pow(x, -1, p)`` for inverses): field arithmetic, not a curve.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping

from misuan.errors import CryptoError, MalformedMessageError

__all__ = ["PRIME", "SHARE_BYTES", "combine", "split"]

PRIME = (1 << 521) - 1  # the Mersenne prime M521
SHARE_BYTES = 66  # ceil(521 / 8)


def split(secret: bytes, n: int, threshold: int) -> list[bytes]:
    """``n`` shares of ``secret`` (at most 64 bytes), any ``threshold`` of which rebuild it; share ``i``
    is the polynomial at ``x = i + 1``."""
    if not 1 <= threshold <= n:
        raise ValueError(f"threshold {threshold} must be between 1 and the {n} shares")
    coeffs = [int.from_bytes(secret, "big")] + [secrets.randbelow(PRIME) for _ in range(threshold - 1)]
    out = []
    for x in range(1, n + 1):
        y = 0
        for c in reversed(coeffs):  # Horner
            y = (y * x + c) % PRIME
        out.append(y.to_bytes(SHARE_BYTES, "big"))
    return out


def combine(shares: Mapping[int, bytes], threshold: int, secret_bytes: int = 32) -> bytes:
    """The secret from ``threshold`` or more shares, keyed by their ``x`` (a party's index + 1)."""
    if len(shares) < threshold:
        raise CryptoError(f"{len(shares)} shares cannot rebuild a secret shared with threshold {threshold}")
    points = sorted(shares.items())[:threshold]
    ys = []
    for x, share in points:
        if len(share) != SHARE_BYTES or not 1 <= x < PRIME:
            raise MalformedMessageError(f"a Shamir share must be {SHARE_BYTES} bytes at a positive x")
        y = int.from_bytes(share, "big")
        if y >= PRIME:
            raise MalformedMessageError("a Shamir share is not a field element")
        ys.append(y)
    secret = 0
    for j, (xj, _) in enumerate(points):
        num, den = 1, 1
        for m, (xm, _) in enumerate(points):
            if m != j:
                num = num * xm % PRIME
                den = den * (xm - xj) % PRIME
        secret = (secret + ys[j] * num * pow(den, -1, PRIME)) % PRIME
    if secret >= 1 << (8 * secret_bytes):
        raise CryptoError("the shares do not rebuild a secret of the expected size: some share is wrong")
    return secret.to_bytes(secret_bytes, "big")
