"""The optimiser's vectors over both parties' coefficients: the bank's block in the clear at the bank,
the partner's block as additive shares mod 2^128 (Python integers: a few hundred of them).

A vector's partner block is ``share_bank + share_partner mod 2^128`` in fixed point with
:data:`SCALE_BITS` fractional bits. Linear combinations with public coefficients are local (each
side scales its share and truncates it, SecureML's way; with values below 2^90 the chance that a
truncation goes wrong is below 2^-38); inner products of two such vectors need the cross terms
``<u_bank, v_partner>`` and ``<u_partner, v_bank>``, which :mod:`.products` computes as shares.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from misuan.protocols.vertical_lr import u128

__all__ = ["COEFF_BITS", "MOD", "SCALE_BITS", "WHOLE", "Shared", "Side", "decode_int", "encode_int", "scale_share", "score_words", "truncate_share"]

MOD = u128.MOD
SCALE_BITS = 40  # fractional bits of the optimiser's vectors
COEFF_BITS = 30  # fractional bits of a public coefficient multiplying a shared vector


def encode_int(x: float, bits: int = SCALE_BITS) -> int:
    return int(round(float(x) * 2.0**bits)) % MOD


def decode_int(v: int, bits: int = SCALE_BITS) -> float:
    v %= MOD
    return (v - MOD if v >= MOD // 2 else v) / 2.0**bits


Side = bool | None
WHOLE: Side = None  # a "share" that is the whole value (the other side's is zero): L1's own blocks


def truncate_share(v: int, bits: int, first: Side) -> int:
    """A share of ``x / 2^bits`` from a share of ``x`` (the first party shifts its share, the second
    the negation of its own: right when the two wrap around the ring, as random shares do); with
    :data:`WHOLE` the value itself, shifted as a signed number."""
    if first is None:
        v %= MOD
        return ((v - MOD if v >= MOD // 2 else v) >> bits) % MOD
    return (v % MOD) >> bits if first else (-(((-v) % MOD) >> bits)) % MOD


def score_words(share: list[int], score_bits: int, first: Side) -> np.ndarray:
    """A share of the vector at ``score_bits`` fractional bits mod 2^64 (what lookups take)."""
    shift = SCALE_BITS - score_bits
    return np.array([truncate_share(v, shift, first) % (1 << 64) for v in share], dtype=np.uint64)


def scale_share(share: list[int], c: float, first: Side) -> list[int]:
    """A share of ``c x`` from a share of ``x`` (``c`` public)."""
    k = int(round(c * 2.0**COEFF_BITS))
    return [truncate_share(v * k, COEFF_BITS, first) for v in share]


@dataclasses.dataclass
class Shared:
    """One side's view of a vector: the bank's block (``None`` at the partner) and its share of the
    partner's block."""

    bank: np.ndarray | None
    share: list[int]

    def plus(self, other: Shared) -> Shared:
        bank = None if self.bank is None or other.bank is None else self.bank + other.bank
        return Shared(bank, [(a + b) % MOD for a, b in zip(self.share, other.share, strict=True)])

    def minus(self, other: Shared) -> Shared:
        bank = None if self.bank is None or other.bank is None else self.bank - other.bank
        return Shared(bank, [(a - b) % MOD for a, b in zip(self.share, other.share, strict=True)])

    def times(self, c: float, first: Side) -> Shared:
        return Shared(None if self.bank is None else self.bank * c, scale_share(self.share, c, first))

    def words(self) -> np.ndarray:
        return u128.from_ints(self.share)
