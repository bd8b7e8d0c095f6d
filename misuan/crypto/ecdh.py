"""Commutative blinding for ECDH-PSI: the prime-order subgroup of Curve25519, through OpenSSL's X25519.

ECDH-PSI needs a prime-order group where DDH is hard, a hash onto it, and exponentiation by a secret
scalar that commutes: ``k_a * (k_b * P) == k_b * (k_a * P)``. This module provides them with the
X25519 function of OpenSSL (``cryptography``'s ``X25519PrivateKey.exchange``): measured on the
project's 2-core machine at ~31 us per call, against ~49 us for libsodium's ristretto255 scalar
multiplication (and PyNaCl 1.6 does not even bind the ristretto255 functions) — see docs/privacy.md.

Group. Values are Montgomery u-coordinates (32 bytes, little-endian, canonical: ``u < p``) of points
of Curve25519, ``E: v^2 = u^3 + A u^2 + u`` over ``GF(p)``, ``p = 2^255 - 19``, ``#E = 8 * l``.
An x-coordinate names a point up to sign, so the group really used is ``<G> / {+-1}`` where
``<G>`` has prime order ``l``; DDH there is the assumption X25519 key agreement rests on.

Blinding. ``X25519(k, u)`` is the u-coordinate of ``c(k) * P`` where ``c(k) = 2^254 + 8 * s``
(RFC 7748 clamping, ``s`` uniform below ``2^251``). For a fixed key ``c(k)`` is a fixed integer, so
``X25519(a, X25519(b, u)) = u(c(a) c(b) P) = X25519(b, X25519(a, u))``: blinding commutes. Because
``8 | c(k)`` every output lies in the prime-order subgroup, whatever torsion component the input had.
The effective exponent modulo ``l`` is ``c(k)/8 = 2^251 + s``, uniform on an interval of ``2^251``
values rather than on all of ``Z_l``: the same clamped-exponent assumption as every X25519 key
exchange; the best known attack is a generic kangaroo search, ~``2^125.5`` group operations.

Hashing. :func:`hash_to_curve` maps bytes to a u-coordinate *on the curve* (never on its twist) by
try-and-increment: ``u = BLAKE2b-256(person=DOMAIN, ctr || message) mod 2^255``, accepted when
``u < p`` and ``u^3 + A u^2 + u`` is a non-zero square mod ``p`` (a Jacobi symbol, GMP via gmpy2);
about two tries on average. The accepted ``u`` is uniform over the curve's u-coordinates, so
``8 * P`` is uniform in the prime-order subgroup: a random oracle into the group, as the DDH-PSI
proof needs. Twist points are therefore never blinded, and :func:`find_invalid_point` lets a
protocol refuse a peer's value that is non-canonical, off the curve, or of small order.
Try-and-increment is not constant time: the number of tries for an ID shows only in the local
process's timing, which a remote peer sees summed over whole batches; documented in docs/privacy.md.

No curve arithmetic is implemented here: scalar multiplication is OpenSSL's, the square test is GMP's.
"""

from __future__ import annotations

import hashlib
import secrets

import gmpy2
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

__all__ = [
    "DOMAIN",
    "GROUP_NAME",
    "POINT_BYTES",
    "BlindingKey",
    "SmallOrderPointError",
    "find_invalid_point",
    "hash_to_curve",
]

GROUP_NAME = "curve25519-x25519-tai-blake2b-v1"
POINT_BYTES = 32
DOMAIN = b"misuan-psi-h2c1"  # BLAKE2b personalisation (<= 16 bytes): separates this hash from any other

_P = (1 << 255) - 19
_A = 486662
_MASK255_MPZ = gmpy2.mpz((1 << 255) - 1)
_P_MPZ = gmpy2.mpz(_P)
_A_MPZ = gmpy2.mpz(_A)
_MAX_TRIES = 256  # each try fails with probability ~1/2; 256 failures in a row never happen


def _on_curve(v: gmpy2.mpz) -> bool:
    """True when ``v`` (already ``< p``) is the u-coordinate of a curve point other than (0, 0)."""
    return bool(gmpy2.jacobi(((v + _A_MPZ) * v + 1) * v % _P_MPZ, _P_MPZ) == 1)


def hash_to_curve(messages: list[bytes]) -> bytes:
    """The concatenated 32-byte u-coordinates of the curve points the ``messages`` hash to."""
    out = bytearray(POINT_BYTES * len(messages))
    blake2b = hashlib.blake2b
    from_bytes = gmpy2.mpz.from_bytes
    jacobi = gmpy2.jacobi
    pos = 0
    for msg in messages:
        for ctr in range(_MAX_TRIES):
            digest = blake2b(bytes((ctr,)) + msg, digest_size=32, person=DOMAIN).digest()
            u = from_bytes(digest, "little") & _MASK255_MPZ
            # u on the curve: u^3 + A u^2 + u a non-zero square (inlined _on_curve: this loop is hot)
            if u < _P_MPZ and jacobi(((u + _A_MPZ) * u + 1) * u % _P_MPZ, _P_MPZ) == 1:
                out[pos : pos + POINT_BYTES] = u.to_bytes(POINT_BYTES, "little")
                break
        else:  # pragma: no cover - probability 2^-256
            raise RuntimeError("hash_to_curve found no curve point in 256 tries")
        pos += POINT_BYTES
    return bytes(out)


def find_invalid_point(points: bytes) -> int:
    """Index of the first value that is not a canonical u-coordinate of a curve point, else -1.

    Small-order points pass this check; :meth:`BlindingKey.blind` refuses them (their blinded value
    is the identity).
    """
    from_bytes = gmpy2.mpz.from_bytes
    for i in range(len(points) // POINT_BYTES):
        u = from_bytes(points[i * POINT_BYTES : (i + 1) * POINT_BYTES], "little")
        if u >= _P_MPZ or not _on_curve(u):
            return i
    return -1


class SmallOrderPointError(ValueError):
    """A value to blind has small order, so its blinded value would be the identity."""

    def __init__(self, index: int) -> None:
        super().__init__(f"point #{index} has small order")
        self.index = index


class BlindingKey:
    """A secret scalar ``k`` and the map ``P -> c(k) * P`` on concatenated u-coordinates."""

    def __init__(self, secret: bytes | None = None) -> None:
        if secret is None:
            secret = secrets.token_bytes(32)
        if len(secret) != 32:
            raise ValueError("a blinding key is 32 bytes")
        self._secret = bytes(secret)
        self._key = X25519PrivateKey.from_private_bytes(self._secret)

    def secret_bytes(self) -> bytes:
        """The raw scalar, to hand to this party's own worker processes; never send it anywhere."""
        return self._secret

    def blind(self, points: bytes, truncate: int = POINT_BYTES) -> bytes:
        """``c(k) * P`` for every 32-byte u-coordinate in ``points``, each cut to its first ``truncate`` bytes.

        Raises :class:`SmallOrderPointError` for an input of small order.
        """
        if len(points) % POINT_BYTES:
            raise ValueError(f"{len(points)} bytes is not a whole number of {POINT_BYTES}-byte points")
        exchange = self._key.exchange
        public = X25519PublicKey.from_public_bytes
        step = POINT_BYTES
        try:
            if truncate == POINT_BYTES:
                return b"".join([exchange(public(points[i : i + step])) for i in range(0, len(points), step)])
            return b"".join(
                [exchange(public(points[i : i + step]))[:truncate] for i in range(0, len(points), step)]
            )
        except ValueError:
            # OpenSSL refuses an all-zero result, i.e. a small-order input: find which one
            for i in range(0, len(points), step):
                try:
                    exchange(public(points[i : i + step]))
                except ValueError:
                    raise SmallOrderPointError(i // step) from None
            raise
