"""Fixed-point encoding, key derivation and the masks of secure aggregation.

- Encoding: ``round(x * 2^frac_bits)`` as a signed 64-bit integer, added in Z / 2^64; inputs above
  ``max_abs`` are refused before anything is sent, and :class:`SecAggParams.check_capacity` makes
  sure the sum of all parties' encodings cannot wrap.
- Keys: X25519 (OpenSSL through ``cryptography``); each shared secret goes through HKDF-SHA256 with
  the round's session id and the purpose in ``info``, so no key serves two purposes or two rounds.
- Masks: AES-128-CTR keystreams of a 16-byte key, read as uint64 vectors (a PRG under the PRF
  assumption on AES): one self mask per party, one pairwise mask per pair of data parties.
"""

from __future__ import annotations

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from misuan.errors import MalformedMessageError

__all__ = ["decode", "derive_key", "encode", "mask", "public_bytes", "shared_key"]


def encode(values: np.ndarray, frac_bits: int, max_abs: float) -> np.ndarray:
    """Float64 values as uint64 fixed-point (two's complement); ``ValueError`` above ``max_abs`` or not finite."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError("secure aggregation sums 1-D vectors")
    if not np.all(np.isfinite(x)):
        raise ValueError("the vector to aggregate has NaN or infinite entries")
    worst = float(np.max(np.abs(x))) if x.size else 0.0
    if worst > max_abs:
        raise ValueError(f"an entry of the vector is {worst:g}, above max_abs {max_abs:g}: scale it or raise max_abs")
    return np.round(x * float(1 << frac_bits)).astype(np.int64).view(np.uint64)


def decode(total: np.ndarray, frac_bits: int) -> np.ndarray:
    """The sum in Z / 2^64 back to float64."""
    return total.view(np.int64).astype(np.float64) / float(1 << frac_bits)


def public_bytes(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes_raw()


def derive_key(secret: bytes, session: bytes, purpose: bytes) -> bytes:
    """A 16-byte key for ``purpose`` in round ``session`` from a shared secret."""
    return HKDF(hashes.SHA256(), 16, salt=session, info=b"misuan-secagg/" + purpose).derive(secret)


def shared_key(private_raw: bytes, peer_public: bytes, session: bytes, purpose: bytes) -> bytes:
    """X25519 between our private key (raw 32 bytes) and a peer's public key, then :func:`derive_key`."""
    try:
        peer = X25519PublicKey.from_public_bytes(peer_public)
        secret = X25519PrivateKey.from_private_bytes(private_raw).exchange(peer)
    except ValueError as exc:  # a low-order point gives an all-zero secret: OpenSSL refuses it
        raise MalformedMessageError(f"an X25519 public key of the round is unusable: {exc}") from exc
    return derive_key(secret, session, purpose)


def mask(key: bytes, length: int) -> np.ndarray:
    """``length`` uint64 words of the AES-128-CTR keystream of ``key``."""
    out = np.empty(8 * length + 16, dtype=np.uint8)
    zeros = np.zeros(8 * length, dtype=np.uint8)
    Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor().update_into(zeros.data, out.data)
    return out[: 8 * length].view(np.uint64)
