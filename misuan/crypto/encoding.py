"""Fixed-point codec: signed floats <-> non-negative integers that add up correctly under HE.

Encoding (``K = value_bits``, ``f = frac_bits``, ``T = max_terms``, ``A = max_abs``)::

    v = round(x * 2**f)                 # signed integer; |v| <= A * 2**f, else EncodingOverflowError
    encode(x) = v mod 2**K              # two's complement in K bits: a non-negative int < 2**K

Invariants (why a sum of encodings decodes to the sum of the values):

1. Every encoding is in ``[0, 2**K)``, so a sum of at most ``T`` encodings is below ``T * 2**K <=
   2**slot_bits`` with ``slot_bits = K + ceil(log2 T)``: it never wraps in the HE plaintext space as
   long as ``slot_bits <= plaintext_bits`` (checked by :meth:`FixedPointCodec.check_fits`).
2. ``K`` is chosen so that ``T * A * 2**f < 2**(K-1)``: the true signed sum of at most ``T`` values
   fits K-bit two's complement, so ``(sum of encodings) mod 2**K`` read as signed is exactly the
   sum of the ``v``. :meth:`decode_sum` then divides by ``2**f``.
3. Several sums can share one plaintext in slots of ``slot_bits`` bits (:meth:`pack`): each slot's
   sum stays below ``2**slot_bits`` (invariant 1), so slots never carry into each other.

Overflow detection: :meth:`encode` refuses ``|x| > max_abs`` (and non-finite values);
:meth:`decode_sum` refuses a raw sum above ``T * (2**K - 1)``, which no sum of at most ``T``
valid encodings can reach (it signals more terms than ``max_terms`` or a corrupted ciphertext).
Rounding: each value is off by at most ``2**-(f+1)``; a sum of ``T`` values by ``T * 2**-(f+1)``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from misuan.errors import EncodingOverflowError

__all__ = ["FixedPointCodec"]


@dataclasses.dataclass(frozen=True)
class FixedPointCodec:
    """See the module docstring for the encoding and its invariants."""

    frac_bits: int = 32
    max_abs: float = 1.0
    max_terms: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.frac_bits <= 256:
            raise ValueError(f"frac_bits must be in [0, 256], got {self.frac_bits}")
        if not (math.isfinite(self.max_abs) and self.max_abs > 0):
            raise ValueError(f"max_abs must be a positive finite number, got {self.max_abs}")
        if self.max_terms < 1:
            raise ValueError(f"max_terms must be >= 1, got {self.max_terms}")

    @property
    def max_int(self) -> int:
        """Largest |round(x * 2**f)| accepted."""
        return int(math.floor(self.max_abs * 2.0**self.frac_bits))

    @property
    def value_bits(self) -> int:
        """K: two's-complement width holding any sum of ``max_terms`` values (invariant 2)."""
        return (self.max_int * self.max_terms).bit_length() + 1

    @property
    def slot_bits(self) -> int:
        """Width of one slot: room for the carries of ``max_terms`` K-bit encodings (invariant 1)."""
        return self.value_bits + (self.max_terms - 1).bit_length()

    def check_fits(self, plaintext_bits: int, slots: int = 1) -> None:
        if self.slot_bits * slots > plaintext_bits:
            raise EncodingOverflowError(
                f"{slots} slot(s) of {self.slot_bits} bits do not fit {plaintext_bits} plaintext bits: "
                f"lower frac_bits ({self.frac_bits}), max_abs or max_terms ({self.max_terms})"
            )

    def encode(self, x: np.ndarray | Sequence[float]) -> list[int]:
        """Non-negative ints ``< 2**value_bits``; raises :class:`EncodingOverflowError` if ``|x| > max_abs``."""
        a = np.asarray(x, dtype=np.float64).reshape(-1)
        if not np.all(np.isfinite(a)):
            raise EncodingOverflowError("cannot encode NaN or infinite values")
        v = np.rint(a * 2.0**self.frac_bits)
        lim = self.max_int
        if a.size and float(np.max(np.abs(v))) > lim:
            raise EncodingOverflowError(
                f"value {float(a[np.argmax(np.abs(v))])!r} exceeds max_abs={self.max_abs} of the fixed-point codec"
            )
        mod = 1 << self.value_bits
        if lim < 2**62:  # fast path: exact in int64
            return [int(u) % mod for u in v.astype(np.int64).tolist()]
        return [int(u) % mod for u in v.tolist()]

    def decode_sum(self, raw: Sequence[int]) -> np.ndarray:
        """Decode sums of at most ``max_terms`` encodings (a single encoding is a sum of one)."""
        k = self.value_bits
        cap = self.max_terms * ((1 << k) - 1)  # the largest sum of max_terms encodings
        half, mod = 1 << (k - 1), 1 << k
        out = np.empty(len(raw), dtype=np.float64)
        scale = 2.0**-self.frac_bits
        for i, s in enumerate(raw):
            s = int(s)
            if not 0 <= s <= cap:
                raise EncodingOverflowError(
                    f"encoded sum {s} exceeds max_terms * (2**{k} - 1): "
                    f"more than max_terms={self.max_terms} terms were added, or the ciphertext is corrupt"
                )
            r = s & (mod - 1)
            out[i] = (r - mod if r >= half else r) * scale
        return out

    def decode(self, raw: Sequence[int]) -> np.ndarray:
        return self.decode_sum(raw)

    # --- several values per plaintext ------------------------------------------------------------
    def pack(self, columns: Sequence[Sequence[int]]) -> list[int]:
        """Pack encodings ``columns[j][i]`` into one integer per i, column 0 in the highest slot."""
        if not columns:
            raise ValueError("nothing to pack")
        w = self.slot_bits
        out = [int(c) for c in columns[0]]
        for col in columns[1:]:
            if len(col) != len(out):
                raise ValueError("packed columns must have equal lengths")
            out = [(a << w) | int(b) for a, b in zip(out, col, strict=True)]
        return out

    def unpack(self, packed: Sequence[int], slots: int) -> list[list[int]]:
        """Inverse of :meth:`pack` for sums of packed values: ``slots`` raw slot sums per integer."""
        w = self.slot_bits
        mask = (1 << w) - 1
        cols: list[list[int]] = [[] for _ in range(slots)]
        for s in packed:
            s = int(s)
            if s < 0 or s.bit_length() > w * slots:
                raise EncodingOverflowError(f"packed sum has {s.bit_length()} bits, more than {slots} slots of {w}")
            for j in range(slots - 1, -1, -1):
                cols[j].append(s & mask)
                s >>= w
        return cols
