"""X25519 eight at a time: a thin ctypes binding to Intel's multi-buffer crypto library (crypto_mb).

Why. ECDH-PSI costs two X25519 scalar multiplications per ID per party, so their speed sets the
speed of PSI. OpenSSL computes one at a time (~28-31 us here through ``cryptography``); Intel's
crypto_mb (part of the Intel Cryptography Primitives Library, Apache-2.0, on PyPI as ``ipp-crypto``)
computes eight at once in the 52-bit lanes of AVX-512 IFMA: ~5 us per multiplication on the
project's 2-core Xeon. That is what SecretFlow's ECDH-PSI uses too. Nothing here implements curve
arithmetic; :func:`scalar_mult` only lays out pointers and calls ``mbx_x25519_mb8``.

Where it exists. The wheels are Linux x86_64 only, and the library needs the Intel compiler runtime
(PyPI ``intel-cmplr-lib-rt``) and the system's OpenSSL 3 (``libcrypto.so.3``). :func:`load` finds
the shared objects through the installed packages' file lists, loads them, and runs a known-answer
test against OpenSSL's X25519 (RFC 7748 vectors plus random ones). When anything is missing or the
test fails it returns ``None`` and :func:`unavailable_reason` says why; callers then use OpenSSL,
which gives bit-identical results. ``MISUAN_X25519=openssl`` forces OpenSSL (benchmarks, tests).

ctypes releases the GIL for the duration of each foreign call, so threads can share the work too.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.metadata
import os
import secrets
import sys
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

__all__ = ["BACKEND_ENV", "MultiBufferX25519", "load", "unavailable_reason"]

BACKEND_ENV = "MISUAN_X25519"  # "auto" (default), "openssl" or "multibuffer"
_LANES = 8
_POINT = 32
# per-lane 4-bit status of mbx_x25519_mb8: 0 ok, 4 small-order input (all-zero result, which the
# caller detects from the output); any other bit is a real failure
_STATUS_FAILURE_BITS = 0xBBBBBBBB
# crypto_mb gives wrong results for some inputs with almost every bit set: all of [p - 1393, p)
# and values with one or two zero bits (found by this project's differential tests against OpenSSL
# and libsodium; the lowest popcount of a wrong one was 245 of 255). Such rows go to OpenSSL.
# Honest inputs are uniform and reach this popcount with probability ~2^-125: never, in practice.
_SUSPECT_POPCOUNT = 224
_BYTE_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint16)
_BASE_POINT_U = 9  # pads a partial last group of eight: any valid point would do
# the Intel compiler runtime that libcrypto_mb.so links against, in dependency order
_RUNTIME = ("libintlc.so.5", "libimf.so", "libsvml.so", "libirng.so")
# RFC 7748 section 5.2, second test vector: scalar, u-coordinate, result
_RFC7748 = (
    bytes.fromhex("4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d"),
    bytes.fromhex("e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493"),
    bytes.fromhex("95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957"),
)

_reason: str | None = None


class MultiBufferX25519:
    """The loaded ``mbx_x25519_mb8`` function, and X25519 of one scalar with many points."""

    def __init__(self, mb8: ctypes._CFuncPtr) -> None:  # type: ignore[name-defined]
        self._mb8 = mb8

    def scalar_mult(self, scalar: bytes, points: np.ndarray) -> np.ndarray:
        """``X25519(scalar, u)`` for every row of ``points`` (``uint8``, shape ``(n, 32)``), as such rows.

        Results equal OpenSSL's bit for bit (RFC 7748: clamped scalar, top bit of ``u`` masked,
        ``u`` reduced mod p); a small-order input gives an all-zero row, which the caller checks.
        Rows crypto_mb is known to get wrong (see ``_SUSPECT_POPCOUNT``) are computed by OpenSSL.
        """
        if len(scalar) != _POINT:
            raise ValueError("an X25519 scalar is 32 bytes")
        n = int(points.shape[0])
        padded = -(-n // _LANES) * _LANES
        inp = np.zeros((padded, _POINT), dtype=np.uint8)
        inp[:n] = points
        inp[n:, 0] = _BASE_POINT_U
        out = np.empty((padded, _POINT), dtype=np.uint8)
        key = ctypes.create_string_buffer(scalar, _POINT)
        key_ptrs = (ctypes.c_void_p * _LANES)(*([ctypes.addressof(key)] * _LANES))
        offsets = np.arange(padded, dtype=np.uint64) * _POINT
        in_ptrs = np.uint64(inp.ctypes.data) + offsets
        out_ptrs = np.uint64(out.ctypes.data) + offsets
        in_base, out_base, key_base = in_ptrs.ctypes.data, out_ptrs.ctypes.data, ctypes.addressof(key_ptrs)
        mb8 = self._mb8
        stride = _LANES * 8  # eight 8-byte pointers per call
        for off in range(0, padded * 8, stride):
            status = mb8(out_base + off, key_base, in_base + off)
            if status & _STATUS_FAILURE_BITS:
                raise RuntimeError(f"mbx_x25519_mb8 failed with status {status:#x}")
        result: np.ndarray = out[:n]
        for i in np.flatnonzero(_popcount255(points) >= _SUSPECT_POPCOUNT).tolist():
            result[i] = np.frombuffer(_openssl_x25519(scalar, points[i].tobytes()), dtype=np.uint8)
        return result


def _popcount255(points: np.ndarray) -> np.ndarray:
    """Set bits among the low 255 of each row (X25519 ignores bit 255)."""
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0: a popcount instruction per 64-bit word
        words = np.ascontiguousarray(points).view("<u8")
        total = np.bitwise_count(words).sum(axis=1, dtype=np.int64)
    else:
        total = _BYTE_POPCOUNT[points].sum(axis=1, dtype=np.int64)
    return total - (points[:, -1] >> 7)


def _openssl_x25519(scalar: bytes, u: bytes) -> bytes:
    """OpenSSL's X25519, with the all-zero result of a small-order input returned instead of refused."""
    try:
        return X25519PrivateKey.from_private_bytes(scalar).exchange(X25519PublicKey.from_public_bytes(u))
    except ValueError:
        return bytes(_POINT)


def _find(dist: str, name: str) -> Path:
    try:
        files = importlib.metadata.files(dist) or []
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(f"the {dist} package is not installed") from None
    for f in files:
        if f.name == name:
            return Path(str(f.locate()))
    raise FileNotFoundError(f"{dist} has no {name}")


def _known_answer_test(mb: MultiBufferX25519) -> None:
    scalar, u, expected = _RFC7748
    got = mb.scalar_mult(scalar, np.frombuffer(u, dtype=np.uint8).reshape(1, _POINT))
    if got.tobytes() != expected:
        raise RuntimeError("RFC 7748 test vector mismatch")
    key = secrets.token_bytes(_POINT)
    rng = np.random.default_rng()
    points = rng.integers(0, 256, size=(11, _POINT), dtype=np.uint8)  # 11: a partial last group of 8
    got = mb.scalar_mult(key, points)
    for i in range(points.shape[0]):
        if got[i].tobytes() != _openssl_x25519(key, points[i].tobytes()):
            raise RuntimeError("result differs from OpenSSL's X25519")


@functools.lru_cache(maxsize=1)
def _load_cached() -> MultiBufferX25519 | None:
    global _reason
    _reason = None
    if not (sys.platform.startswith("linux") and os.uname().machine == "x86_64"):
        _reason = "crypto_mb is used on Linux x86_64 only"
        return None
    try:
        for name in _RUNTIME:
            ctypes.CDLL(str(_find("intel-cmplr-lib-rt", name)))  # local: libimf must not replace libm's exp, log, ...
        lib = ctypes.CDLL(str(_find("ipp-crypto", "libcrypto_mb.so")))
        applicable = lib.mbx_is_crypto_mb_applicable
        applicable.restype, applicable.argtypes = ctypes.c_int, [ctypes.c_uint64]
        if not applicable(0):
            _reason = "this CPU lacks the AVX-512 instructions crypto_mb needs"
            return None
        mb8 = lib.mbx_x25519_mb8
        mb8.restype = ctypes.c_uint64
        mb8.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
        mb = MultiBufferX25519(mb8)
        _known_answer_test(mb)
    except (OSError, AttributeError, RuntimeError) as exc:
        _reason = f"crypto_mb could not be used: {exc}"
        return None
    return mb


def _choice() -> str:
    return os.environ.get(BACKEND_ENV, "auto").strip().lower()


def load() -> MultiBufferX25519 | None:
    """The multi-buffer X25519, or ``None`` (see :func:`unavailable_reason`) when OpenSSL must do."""
    choice = _choice()
    if choice == "openssl":
        return None
    mb = _load_cached()
    if mb is None and choice == "multibuffer":
        raise RuntimeError(f"{BACKEND_ENV}=multibuffer but {_reason}")
    return mb


def unavailable_reason() -> str | None:
    """Why :func:`load` returned ``None``, or ``None`` when it did not (or was not asked yet)."""
    if _choice() == "openssl":
        return f"{BACKEND_ENV}=openssl"
    return _reason
