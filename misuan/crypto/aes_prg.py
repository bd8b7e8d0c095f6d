"""AES-based pseudorandom generator, PRF and fixed-key hash over NumPy arrays (OpenSSL through ``cryptography``).

These are the symmetric primitives of OT extension and OT-based PSI; each runs as one OpenSSL call
over a whole array (AES-NI where the CPU has it, as every x86-64 CPU of the last decade does).

- :func:`expand`: AES-128-CTR keystream of a 16-byte seed, from any 16-byte-aligned offset, so a
  long column can be produced (and consumed) in chunks. A PRG under the PRF assumption on AES.
- :func:`prf`: AES-128-ECB of 16-byte blocks under a key: a PRF (and a permutation).
- :func:`fixed_key_hash`: rows of 16-byte blocks compressed to 16 bytes by Matyas-Meyer-Oseas
  chaining with one fixed public key, ``h <- AES_K(h ^ m_j) ^ h ^ m_j``, from a per-row tweak. In the ideal-cipher model
  for fixed-key AES this is a (tweakable) correlation-robust hash, the assumption libOTe and EMP
  make for OT extension (Guo, Katz, Wang, Yu, S&P 2020); the tweak here is a per-use domain
  separation block mixed in first.
"""

from __future__ import annotations

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = ["expand", "fixed_key_hash", "prf"]

BLOCK = 16
_FIXED_KEY = bytes.fromhex("6d697375616e2d6b6b72742d68617368")  # "misuan-kkrt-hash": public, fixed


def expand(seed: bytes, offset: int, nbytes: int) -> np.ndarray:
    """``nbytes`` of the AES-CTR keystream of ``seed`` starting at byte ``offset`` (a multiple of 16)."""
    if len(seed) != BLOCK or offset % BLOCK:
        raise ValueError("expand needs a 16-byte seed and a 16-byte-aligned offset")
    counter = (offset // BLOCK).to_bytes(BLOCK, "big")
    enc = Cipher(algorithms.AES(seed), modes.CTR(counter)).encryptor()
    return np.frombuffer(enc.update(bytes(nbytes)), dtype=np.uint8)


def prf(key: bytes, blocks: np.ndarray) -> np.ndarray:
    """AES-128 of each 16-byte row of ``blocks`` (shape ``(n, 16)``, uint8) under ``key``."""
    data = np.ascontiguousarray(blocks, dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != BLOCK:
        raise ValueError("prf takes an (n, 16) uint8 array")
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return np.frombuffer(enc.update(data.tobytes()), dtype=np.uint8).reshape(-1, BLOCK)


def fixed_key_hash(rows: np.ndarray, tweaks: np.ndarray) -> np.ndarray:
    """16-byte digests of ``rows`` (shape ``(n, 16*k)``, uint8), MMO-chained under a fixed key after
    each row's 16-byte tweak (``tweaks``, shape ``(n, 16)``: e.g. a session id and the row's bin)."""
    data = np.ascontiguousarray(rows, dtype=np.uint8)
    n = data.shape[0]
    if data.ndim != 2 or data.shape[1] % BLOCK or tweaks.shape != (n, BLOCK):
        raise ValueError("fixed_key_hash takes an (n, 16*k) uint8 array and (n, 16) tweaks")
    k = data.shape[1] // BLOCK
    h = np.ascontiguousarray(tweaks, dtype=np.uint8).copy()
    blocks = data.reshape(n, k, BLOCK)
    for j in range(k):
        x = np.bitwise_xor(h, blocks[:, j, :])
        h = np.bitwise_xor(prf(_FIXED_KEY, x), x)
    return h
