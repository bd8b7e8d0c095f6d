"""Base oblivious transfers: Chou-Orlandi "simplest OT" over the prime-order group of Ed25519 (libsodium).

A batch of ``k`` 1-out-of-2 OTs of random 16-byte keys, semi-honest:

- the **sender** draws ``a`` and sends ``A = a*G`` (one point for the batch);
- the **receiver**, with choice bits ``c_i``, draws ``b_i`` and sends ``B_i = b_i*G`` (``c_i = 0``)
  or ``B_i = A + b_i*G`` (``c_i = 1``), and keeps ``k_i = H(i, A, B_i, b_i*A)``;
- the sender computes ``k_i^0 = H(i, A, B_i, a*B_i)`` and ``k_i^1 = H(i, A, B_i, a*(B_i - A))``, the
  latter as ``a*B_i - a*A`` (one scalar multiplication per OT).

``k_i = k_i^{c_i}``, and ``k_i^{1-c_i}`` is pseudorandom to the receiver under CDH in the group with
``H`` (SHA-256, truncated to 16 bytes, domain-separated) a random oracle (Chou and Orlandi,
LATINCRYPT 2015); the sender sees ``B_i``, uniform whatever ``c_i``. Points are checked
(``crypto_core_ed25519_is_valid_point``: on the curve, in the prime-order subgroup, not of small
order) before any scalar multiplication, so a peer's malformed point is refused, not used.

Every group operation is a libsodium call through PyNaCl (``crypto_scalarmult_ed25519_noclamp``,
``crypto_core_ed25519_add``/``sub``); scalars come from :func:`os.urandom` reduced mod the group
order by libsodium.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence

from nacl import bindings as sodium

from misuan.errors import MalformedMessageError

__all__ = ["POINT_BYTES", "OtReceiver", "OtSender"]

POINT_BYTES = 32
KEY_BYTES = 16
_DOMAIN = b"misuan-baseot-v1"


def _scalar() -> bytes:
    return bytes(sodium.crypto_core_ed25519_scalar_reduce(os.urandom(64)))


def _check_point(p: bytes, what: str) -> bytes:
    if not isinstance(p, bytes) or len(p) != POINT_BYTES or not sodium.crypto_core_ed25519_is_valid_point(p):
        raise MalformedMessageError(f"{what} is not a valid Ed25519 group element")
    return p


def _key(i: int, a_pt: bytes, b_pt: bytes, shared: bytes) -> bytes:
    h = hashlib.sha256(_DOMAIN + i.to_bytes(4, "big") + a_pt + b_pt + shared)
    return h.digest()[:KEY_BYTES]


class OtSender:
    """The sender of a batch: :attr:`message` (``A``) first, then :meth:`keys` from the receiver's points."""

    def __init__(self) -> None:
        self._a = _scalar()
        self.message = bytes(sodium.crypto_scalarmult_ed25519_base_noclamp(self._a))

    def keys(self, points: Sequence[bytes]) -> list[tuple[bytes, bytes]]:
        """``(k_i^0, k_i^1)`` for each receiver point ``B_i``."""
        out = []
        a_a = bytes(sodium.crypto_scalarmult_ed25519_noclamp(self._a, self.message))
        for i, b_pt in enumerate(points):
            _check_point(b_pt, f"base-OT point #{i}")
            a_b = bytes(sodium.crypto_scalarmult_ed25519_noclamp(self._a, b_pt))
            if a_b == a_a:  # B_i = A: a*(B_i - A) would be the identity
                raise MalformedMessageError(f"base-OT point #{i} equals the sender's point")
            # a*(B_i - A) = a*B_i - a*A: one scalar multiplication per OT, not two
            k0 = _key(i, self.message, b_pt, a_b)
            k1 = _key(i, self.message, b_pt, bytes(sodium.crypto_core_ed25519_sub(a_b, a_a)))
            out.append((k0, k1))
        return out


class OtReceiver:
    """The receiver of a batch, with its choice bits: :meth:`points` for the sender's ``A``, then :meth:`keys`."""

    def __init__(self, choices: Sequence[int]) -> None:
        self.choices = [int(c) & 1 for c in choices]
        self._b = [_scalar() for _ in self.choices]
        self._sent: list[bytes] = []

    def points(self, sender_message: bytes) -> list[bytes]:
        a_pt = _check_point(sender_message, "the base-OT sender's point")
        self._a_pt = a_pt
        out = []
        for b, c in zip(self._b, self.choices, strict=True):
            bg = bytes(sodium.crypto_scalarmult_ed25519_base_noclamp(b))
            out.append(bytes(sodium.crypto_core_ed25519_add(a_pt, bg)) if c else bg)
        self._sent = out
        return out

    def keys(self) -> list[bytes]:
        """``k_i^{c_i}`` for each OT."""
        return [
            _key(i, self._a_pt, b_pt, bytes(sodium.crypto_scalarmult_ed25519_noclamp(b, self._a_pt)))
            for i, (b, b_pt) in enumerate(zip(self._b, self._sent, strict=True))
        ]
