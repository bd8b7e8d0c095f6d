"""Fixed-point encoding, key derivation and the masks of secure aggregation.

- Encoding: ``round(x * 2^frac_bits)`` as a signed 64-bit integer, added in Z / 2^64; inputs above
  ``max_abs`` are refused before anything is sent, and :class:`SecAggParams.check_capacity` makes
  sure the sum of all parties' encodings cannot wrap.
- Keys: X25519 and HKDF-SHA256 with the round's session id and the purpose
  (:mod:`misuan.crypto.key_agreement`), so no key serves two purposes or two rounds.
- Masks: AES-128-CTR keystreams of a 16-byte key, read as uint64 vectors (a PRG under the PRF
  assumption on AES): one self mask per party, one pairwise mask per pair of data parties.
"""

from __future__ import annotations

import numpy as np

from misuan.crypto.aes_prg import Keystreams
from misuan.errors import DataError

__all__ = ["decode", "encode", "mask"]


def encode(values: np.ndarray, frac_bits: int, max_abs: float) -> np.ndarray:
    """Float64 values as uint64 fixed-point (two's complement); :class:`DataError` above ``max_abs`` or not finite."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise DataError("secure aggregation sums 1-D vectors")
    if not np.all(np.isfinite(x)):
        raise DataError("the vector to aggregate has NaN or infinite entries")
    worst = float(np.max(np.abs(x))) if x.size else 0.0
    if worst > max_abs:
        raise DataError(f"an entry of the vector is {worst:g}, above max_abs {max_abs:g}: scale it or raise max_abs")
    return np.round(x * float(1 << frac_bits)).astype(np.int64).view(np.uint64)


def decode(total: np.ndarray, frac_bits: int) -> np.ndarray:
    """The sum in Z / 2^64 back to float64."""
    return total.view(np.int64).astype(np.float64) / float(1 << frac_bits)


def mask(key: bytes, length: int) -> np.ndarray:
    """``length`` uint64 words of the AES-128-CTR keystream of ``key``."""
    return np.ascontiguousarray(Keystreams([key]).next(8 * length)[0]).view(np.uint64)
