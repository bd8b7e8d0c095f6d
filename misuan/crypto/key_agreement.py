"""X25519 key agreement, HKDF and AES-GCM sealing (OpenSSL through ``cryptography``), for protocols
whose parties agree on pairwise keys (secure aggregation).

- :class:`KeyPair`: a fresh X25519 key pair; the private key leaves it only as raw bytes, for a
  protocol that must secret-share it (and later rebuild it).
- :func:`shared_key`: X25519 between a raw private key and a peer's public key, then HKDF-SHA256
  with a salt (a session id) and the purpose in ``info``: no key serves two purposes or two runs.
- :func:`seal` / :func:`unseal`: AES-128-GCM with a random 12-byte nonce and associated data.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from misuan.errors import MalformedMessageError

__all__ = ["KEY_BYTES", "KeyPair", "derive_key", "seal", "shared_key", "unseal"]

KEY_BYTES = 32  # X25519 public and private keys
_NONCE = 12


class KeyPair:
    """A fresh X25519 key pair."""

    def __init__(self) -> None:
        self._sk = X25519PrivateKey.generate()
        self.public = self._sk.public_key().public_bytes_raw()

    @property
    def private_raw(self) -> bytes:
        return self._sk.private_bytes_raw()


def derive_key(secret: bytes, salt: bytes, purpose: bytes) -> bytes:
    """A 16-byte key for ``purpose`` from a shared secret (HKDF-SHA256)."""
    return HKDF(hashes.SHA256(), 16, salt=salt, info=b"misuan/" + purpose).derive(secret)


def shared_key(private_raw: bytes, peer_public: bytes, salt: bytes, purpose: bytes) -> bytes:
    """X25519 of our raw private key and a peer's public key, then :func:`derive_key`; a peer key that
    is not 32 bytes or gives an all-zero secret (a low-order point) is a :class:`MalformedMessageError`."""
    try:
        peer = X25519PublicKey.from_public_bytes(peer_public)
        secret = X25519PrivateKey.from_private_bytes(private_raw).exchange(peer)
    except ValueError as exc:
        raise MalformedMessageError(f"an X25519 public key is unusable: {exc}") from exc
    return derive_key(secret, salt, purpose)


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """``nonce || AES-GCM(key, plaintext, aad)``."""
    nonce = os.urandom(_NONCE)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def unseal(key: bytes, blob: bytes, aad: bytes, what: str) -> bytes:
    """The plaintext of :func:`seal`; :class:`MalformedMessageError` naming ``what`` when it does not open."""
    try:
        return AESGCM(key).decrypt(blob[:_NONCE], blob[_NONCE:], aad)
    except (InvalidTag, ValueError) as exc:
        raise MalformedMessageError(f"{what} does not decrypt (tampered with, or not for this party)") from exc
