"""Commutative blinding for ECDH-PSI: the prime-order subgroup of Curve25519, through X25519.

ECDH-PSI needs a prime-order group where DDH is hard, a hash onto it, and exponentiation by a secret
scalar that commutes: ``k_a * (k_b * P) == k_b * (k_a * P)``. This module provides them with the
X25519 function, computed by Intel's multi-buffer crypto_mb where it loads and passes its self-test
(:mod:`misuan.crypto.x25519_multibuffer`, ~5.3 us per multiplication on the project's 2-core
machine), else by OpenSSL (``cryptography``'s ``X25519PrivateKey.exchange``, ~31 us); both give the
same bytes. libsodium's ristretto255 costs ~49 us (and PyNaCl 1.6 does not even bind it) — see
docs/privacy.md.

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
try-and-increment: the two halves of ``BLAKE2b-512(person=DOMAIN, ctr || message)`` for
``ctr = 0, 1, ...``, each read as ``u mod 2^255``, the first accepted where ``u < p`` and
``u^3 + A u^2 + u`` is a non-zero square mod ``p`` (a Jacobi symbol, GMP via gmpy2); about two
candidates, and 4/3 hash calls, on average. The accepted ``u`` is uniform over the curve's
u-coordinates, so ``8 * P`` is uniform in the prime-order subgroup: a random oracle into the
group, as the DDH-PSI proof needs. Our own values are therefore never twist points; :func:`find_noncanonical` and
:func:`find_invalid_point` let a protocol refuse a peer's value that is non-canonical or off the
curve, and :meth:`BlindingKey.blind` refuses one of small order.
Try-and-increment is not constant time: the number of tries for an ID shows only in the local
process's timing, which a remote peer sees summed over whole batches; documented in docs/privacy.md.

No curve arithmetic is implemented here: scalar multiplication is crypto_mb's or OpenSSL's, the
square test is GMP's.
"""

from __future__ import annotations

import hashlib
import secrets

import gmpy2
import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from misuan.crypto import x25519_multibuffer

__all__ = [
    "DOMAIN",
    "GROUP_NAME",
    "POINT_BYTES",
    "BlindingKey",
    "SmallOrderPointError",
    "find_invalid_point",
    "find_noncanonical",
    "hash_to_curve",
]

GROUP_NAME = "curve25519-x25519-tai-blake2b512-v2"
POINT_BYTES = 32
DOMAIN = b"misuan-psi-h2c1"  # BLAKE2b personalisation (<= 16 bytes): separates this hash from any other

_P = (1 << 255) - 19
_A = 486662
_MASK255_MPZ = gmpy2.mpz((1 << 255) - 1)
_P_MPZ = gmpy2.mpz(_P)
_A_MPZ = gmpy2.mpz(_A)
_ALL_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)
_MAX_TRIES = 256  # hash calls; each fails with probability ~1/4, so 256 failures in a row never happen


def _on_curve(v: gmpy2.mpz) -> bool:
    """True when ``v`` (already ``< p``) is the u-coordinate of a curve point other than (0, 0)."""
    return bool(gmpy2.jacobi(((v + _A_MPZ) * v + 1) * v % _P_MPZ, _P_MPZ) == 1)


def hash_to_curve(messages: list[bytes]) -> bytes:
    """The concatenated 32-byte u-coordinates of the curve points the ``messages`` hash to.

    Candidates come two to a hash call: ``BLAKE2b-512(person=DOMAIN, ctr || message)`` split into
    two 32-byte halves, tried in order (``ctr = 0`` settles ~3 IDs in 4 with one call).
    """
    out = bytearray(POINT_BYTES * len(messages))
    first = hashlib.blake2b(b"\x00", digest_size=64, person=DOMAIN)  # ctr = 0, the common case
    from_bytes = gmpy2.mpz.from_bytes
    jacobi = gmpy2.jacobi
    mask, p, a = _MASK255_MPZ, _P_MPZ, _A_MPZ
    pos = 0
    for msg in messages:
        h = first.copy()
        h.update(msg)
        digest = h.digest()
        for half in (digest[:32], digest[32:]):
            u = from_bytes(half, "little") & mask
            # inlined _on_curve (this loop is hot): u^3 + A u^2 + u a non-zero square
            if u < p and jacobi(((u + a) * u + 1) * u % p, p) == 1:
                break
        else:
            u = _hash_to_curve_slow(msg)
        out[pos : pos + POINT_BYTES] = u.to_bytes(POINT_BYTES, "little")
        pos += POINT_BYTES
    return bytes(out)


def _hash_to_curve_slow(msg: bytes) -> gmpy2.mpz:
    """Candidates from ``ctr = 1, 2, ...``: the ~1 in 4 IDs whose first two candidates both failed."""
    for ctr in range(1, _MAX_TRIES):
        digest = hashlib.blake2b(bytes((ctr,)) + msg, digest_size=64, person=DOMAIN).digest()
        for half in (digest[:32], digest[32:]):
            u = gmpy2.mpz.from_bytes(half, "little") & _MASK255_MPZ
            if u < _P_MPZ and _on_curve(u):
                return u
    raise RuntimeError("hash_to_curve found no curve point in 512 tries")  # pragma: no cover - p = 2^-512


def find_invalid_point(points: bytes, indices: np.ndarray | None = None) -> int:
    """Index of the first value that is not a canonical u-coordinate of a curve point, else -1.

    ``indices``: check only these positions (all when ``None``), e.g. a random sample of a peer's
    batch (see :func:`find_noncanonical` for why a sample is enough). Small-order points pass this
    check; :meth:`BlindingKey.blind` refuses them (their blinded value is the identity).
    """
    from_bytes = gmpy2.mpz.from_bytes
    where = range(len(points) // POINT_BYTES) if indices is None else sorted(int(i) for i in indices)
    for i in where:
        u = from_bytes(points[i * POINT_BYTES : (i + 1) * POINT_BYTES], "little")
        if u >= _P_MPZ or not _on_curve(u):
            return i
    return -1


def find_noncanonical(points: bytes) -> int:
    """Index of the first value that is not a canonical field element (``u >= p``), else -1; vectorised.

    Why a peer's values get this full check but only a sampled on-curve check: a u-coordinate on
    the twist is harmless to the key holder, as the twist of Curve25519 has order ``4 * l'`` with
    ``l'`` a 253-bit prime (its "twist security", RFC 7748 section 7), so ``c(k) * T`` tells
    nothing about ``k``; and such a value simply never matches. The on-curve test costs a Jacobi
    symbol (~2 us) per value, about a ninth of PSI's time, so the protocol tests a random sample of each
    batch: enough to name a peer that sends garbage, which fails it half the time per value.
    """
    limbs = np.frombuffer(points, dtype="<u8").reshape(-1, POINT_BYTES // 8)
    # p = 2^255 - 19: limbs (0xffff...ffed, 0xffff...ffff, 0xffff...ffff, 0x7fff...ffff)
    top = limbs[:, 3]
    over = top > np.uint64(0x7FFFFFFFFFFFFFFF)
    edge = (top == np.uint64(0x7FFFFFFFFFFFFFFF)) & (limbs[:, 2] == _ALL_ONES) & (limbs[:, 1] == _ALL_ONES)
    bad = np.flatnonzero(over | (edge & (limbs[:, 0] >= np.uint64(0xFFFFFFFFFFFFFFED))))
    return int(bad[0]) if bad.size else -1


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
        self._multibuffer = x25519_multibuffer.load()

    @property
    def backend(self) -> str:
        """Which library computes :meth:`blind`: ``"crypto_mb"`` (Intel, 8 lanes) or ``"openssl"``."""
        return "openssl" if self._multibuffer is None else "crypto_mb"

    def secret_bytes(self) -> bytes:
        """The raw scalar, to hand to this party's own worker processes; never send it anywhere."""
        return self._secret

    def blind(self, points: bytes, truncate: int = POINT_BYTES) -> bytes:
        """``c(k) * P`` for every 32-byte u-coordinate in ``points``, each cut to its first ``truncate`` bytes.

        Raises :class:`SmallOrderPointError` for an input of small order.
        """
        if len(points) % POINT_BYTES:
            raise ValueError(f"{len(points)} bytes is not a whole number of {POINT_BYTES}-byte points")
        if self._multibuffer is not None:
            return self._blind_multibuffer(self._multibuffer, points, truncate)
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

    def _blind_multibuffer(self, mb: x25519_multibuffer.MultiBufferX25519, points: bytes, truncate: int) -> bytes:
        rows = mb.scalar_mult(self._secret, np.frombuffer(points, dtype=np.uint8).reshape(-1, POINT_BYTES))
        zero = np.flatnonzero(~rows.any(axis=1))  # the result of a small-order input, which OpenSSL refuses
        if zero.size:
            raise SmallOrderPointError(int(zero[0]))
        return rows[:, :truncate].tobytes()
