"""The sigmoid of a shared score by an oblivious lookup of a line per segment: shares of ``p_i = sigma(z_i)``.

The score ``z_i = A_i + B_i mod 2^64`` is shared in fixed point with ``f`` fractional bits between
the *sender* (the label party: share ``A``) and the *receiver* (share ``B``), ``|z| < 2^(k-g-1)``.
Reduced mod ``2^(k+f-g)`` the sum is exact, and ``B mod 2^(k+f-g) = v * 2^(f-g) + low`` with the
receiver's index ``v`` (bits ``f-g .. f-g+k-1`` of ``B``) and its low bits ``low``. So for every
possible ``v`` the sender knows the segment ``[z_v, z_v + h)``, ``h = 2^-g``, in which ``z`` lies
(``z_v = signed((A + v 2^(f-g)) mod 2^(k+f-g)) / 2^f``), and ``z = z_v + low / 2^f`` (so scores
must stay within ``+-(2^(k-g-1) - h)``: :attr:`TableShape.score_limit`). On each segment
it fits a line to ``sigma`` in least squares, ``sigma(z_v + d) ~ a_v + b_v d``, from the expansion
at the segment's middle ``m``: ``b_v = sigma'(m)``, ``a_v = sigma(m) + sigma''(m) h^2 / 24 - b_v h / 2``;
its error has mean zero over the segment (``low`` is uniform: the receiver's share is) and is at
most about ``max|sigma''| h^2 / 12`` (0.002 for ``h = 1/2``).

- **The line**: the receiver obtains ``a_v - m1_i`` and ``b_v - m2_i`` by a 1-out-of-2^k OT (Naor and
  Pinkas's reduction to k 1-out-of-2 OTs: the mask of entry ``x`` is the 128-bit hash of
  ``(x, XOR_l K_l^(x_l))``, which it can form for ``x = v`` only); the sender keeps ``m1, m2``.
- **The product** ``b_v * low``: the receiver's share of ``b_v`` times ``low`` is local; the sender's
  share ``m2`` times the receiver's ``low`` is a Gilboa product (one random OT per bit of ``low``,
  from the same extension: the sender sends ``G(K0) - G(K1) + 2^l m2`` per bit, mod 2^128).
- **Lifting**: ``m1, m2`` are uniform in ``[2^63, 2^64)``, so the receiver's values, as integers,
  are ``a_v + (2^64 - m1)`` (and the same for ``b``) with pads uniform in ``(0, 2^63]``: the shares
  add up over the integers, hence mod 2^128, exactly; the receiver's view leans towards ``a_v`` by at
  most ``2^(p_bits) / 2^63`` (2^-43). The product (``p_bits + f`` fractional bits) is truncated
  locally mod 2^128 to ``p_bits``.

Security model: semi-honest; the OT extension hides ``v`` and ``low`` from the sender; the receiver
sees one padded line per row and padded Gilboa corrections. Costs per row (``k = 6, g = 1``):
``k + f - g`` OTs (25: 400 bytes of columns), ``2^(k+1)`` words of entries (1 KiB) and ``f - g``
corrections of 16 bytes; ``2^k`` hashes and ``2^k`` sigmoids on the sender's side.
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np

from misuan.crypto.aes_prg import BLOCK, fixed_key_hash
from misuan.crypto.ot_extension import ExtensionReceiver, ExtensionSender, chunks_of
from misuan.errors import MalformedMessageError
from misuan.protocols.vertical_lr import u128
from misuan.protocols.vertical_lr.chunks import map_chunks
from misuan.protocols.vertical_lr.ring import random_words

__all__ = ["SigmoidReceiver", "SigmoidSender", "TableShape", "run_extension"]

_DOMAIN = b"misuan-vertical-lr-sigmoid-v2"
_CHUNK_ROWS = 1024


@dataclasses.dataclass(frozen=True)
class TableShape:
    """Fixed point of the score (``score_bits``) and of ``p`` (``p_bits``); segments ``2^-grid_bits``
    wide, ``index_bits`` bits of index, so scores within ``+-2^(index_bits - grid_bits - 1)``."""

    score_bits: int = 20
    grid_bits: int = 1
    index_bits: int = 6
    p_bits: int = 20

    def __post_init__(self) -> None:
        # the score's shares enter mod 2^32 (bin_shares' lookups): the table reads its bits below 2^ots
        if not (0 <= self.grid_bits < self.score_bits <= 30 and 2 <= self.index_bits <= 12 and 8 <= self.p_bits <= 30) \
                or self.index_bits + self.score_bits - self.grid_bits > 32:
            raise ValueError(f"unusable sigmoid table shape {self}")

    @property
    def shift(self) -> int:
        """Bits of ``low``, below the index."""
        return self.score_bits - self.grid_bits

    @property
    def ots(self) -> int:
        return self.index_bits + self.shift

    @property
    def score_limit(self) -> float:
        """Scores must stay within +- this (a segment's start lies up to one segment below the score)."""
        return 2.0 ** (self.index_bits - self.grid_bits - 1) - 2.0**-self.grid_bits

    def entry_words(self) -> int:
        """Words a row: two per entry, two per correction of the product."""
        return 2 * (1 << self.index_bits) + 2 * self.shift


def _tweak_word(session: bytes, what: bytes) -> np.uint64:
    return np.frombuffer(hashlib.sha256(_DOMAIN + what + session).digest()[:8], "<u8")[0]


def _hash2(keys: np.ndarray, first_row: int, at: np.ndarray, session: bytes, what: bytes) -> np.ndarray:
    """``(rows, m, 2)`` uint64: the 128-bit fixed-key hash of each key (``(rows, m, 16)`` bytes) under
    the tweak ``(word ^ row, at)``."""
    rows, m = keys.shape[:2]
    tw = np.empty((rows, m, 2), dtype="<u8")
    tw[:, :, 0] = (np.arange(first_row, first_row + rows, dtype=np.uint64) ^ _tweak_word(session, what))[:, None]
    tw[:, :, 1] = np.broadcast_to(at, (rows, m))
    out = fixed_key_hash(np.ascontiguousarray(keys).reshape(-1, BLOCK), tw.reshape(-1, 2).view(np.uint8))
    return out.view(np.uint64).reshape(rows, m, 2)


def _low_bits(low: np.ndarray, n_bits: int) -> np.ndarray:
    return ((low[:, None] >> np.arange(n_bits, dtype=np.uint64)) & np.uint64(1)).astype(np.uint8)


class SigmoidReceiver:
    """The side whose share picks the segment: the extension's receiver, then :meth:`receive`."""

    def __init__(self, share: np.ndarray, shape: TableShape, session: bytes) -> None:
        self.shape, self.session, self.n = shape, session, len(share)
        self.v = ((share >> np.uint64(shape.shift)) & np.uint64((1 << shape.index_bits) - 1)).astype(np.int64)
        self.low = share & np.uint64((1 << shape.shift) - 1)
        index_bits = _low_bits(self.v.astype(np.uint64), shape.index_bits)
        self.bits = np.hstack([index_bits, _low_bits(self.low, shape.shift)])  # (n, ots)
        self.extension = ExtensionReceiver(self.bits.reshape(-1), session)

    def receive(self, entries: np.ndarray) -> np.ndarray:
        """This side's share of ``p`` mod 2^128 (``(rows, 2)``, ``p_bits`` fractional bits)."""
        s = self.shape
        if not isinstance(entries, np.ndarray) or entries.dtype != np.uint64 or entries.shape != (self.n, s.entry_words()):
            raise MalformedMessageError(f"sigmoid entries must be uint64 ({self.n}, {s.entry_words()})")
        if not self.extension.complete:
            raise RuntimeError("the OT extension's columns come first")
        keys = self.extension.keys[: self.n * s.ots].reshape(self.n, s.ots, BLOCK)
        chosen_keys = keys[:, : s.index_bits].view(np.uint64).reshape(self.n, s.index_bits, 2)
        combo = chosen_keys[:, 0].copy()
        for bit in range(1, s.index_bits):  # the XOR of the keys of its index bits
            combo ^= chosen_keys[:, bit]
        mask = _hash2(combo.view(np.uint8).reshape(self.n, 1, BLOCK), 0, self.v[:, None].astype(np.uint64),
                      self.session, b"line")[:, 0]
        width = 1 << s.index_bits
        line = entries[:, : 2 * width].reshape(self.n, width, 2)[np.arange(self.n), self.v] - mask  # (a - m1, b - m2)
        a, b = u128.widen(line[:, 0], signed=False), u128.widen(line[:, 1], signed=False)
        corrections = entries[:, 2 * width:].reshape(self.n, s.shift, 2)
        pads = _hash2(keys[:, s.index_bits:], 0, np.arange(s.shift, dtype=np.uint64)[None, :], self.session, b"product")
        chosen = self.bits[:, s.index_bits:].astype(bool)
        pads[chosen] = u128.add(pads[chosen], corrections[chosen])
        product = u128.add(u128.sum_rows(pads, axis=1), u128.mul_small(b, self.low))  # low < 2^30
        return u128.add(a, u128.truncate(product, s.score_bits, first=False))


class SigmoidSender:
    """The side that builds each row's lines from its own share: the extension's sender, then :meth:`entries`."""

    def __init__(self, share: np.ndarray, shape: TableShape, session: bytes) -> None:
        self.shape, self.session, self.share = shape, session, share
        self.extension = ExtensionSender(len(share) * shape.ots, session, both_keys=True)
        self.table: np.ndarray | None = None

    def prepare(self) -> None:
        """The entries' lines less this side's masks, ``(rows, 2^k, 2)``: they need only its share, so
        they can be computed while the extension's columns are still on their way."""
        s, n = self.shape, len(self.share)
        self.m1, self.m2 = (random_words(n) | np.uint64(1 << 63) for _ in range(2))  # in the upper half: exact lifting
        table = np.empty((n, 1 << s.index_bits, 2), dtype=np.uint64)
        scale = 2.0**s.p_bits

        def chunk(a: int) -> None:
            b = min(a + _CHUNK_ROWS, n)
            line_a, line_b = self.lines(slice(a, b))
            table[a:b, :, 0] = np.rint(line_a * scale).astype(np.int64).view(np.uint64) - self.m1[a:b, None]
            table[a:b, :, 1] = np.rint(line_b * scale).astype(np.int64).view(np.uint64) - self.m2[a:b, None]

        map_chunks(chunk, range(0, n, _CHUNK_ROWS))
        self.table = table

    def lines(self, rows: slice) -> tuple[np.ndarray, np.ndarray]:
        """``(a, b)``, each ``(rows, 2^k)``: each segment's least-squares line, from its start."""
        s = self.shape
        bits = np.uint64(64 - s.index_bits - s.shift)
        x = np.arange(1 << s.index_bits, dtype=np.uint64) << np.uint64(s.shift)
        start = ((self.share[rows, None] + x[None, :]) << bits).view(np.int64) >> np.int64(bits)
        h = 2.0**-s.grid_bits
        mid = start.astype(np.float64) * 2.0**-s.score_bits + h / 2
        p = 1.0 / (1.0 + np.exp(-mid))
        d1 = p * (1 - p)
        d2 = d1 * (1 - 2 * p)
        return p + d2 * h * h / 24 - d1 * h / 2, d1

    def entries(self) -> tuple[np.ndarray, np.ndarray]:
        """The entries to send (``(rows, entry_words)`` uint64) and this side's share of ``p`` mod 2^128."""
        if not self.extension.complete:
            raise RuntimeError("the OT extension's columns come first")
        if self.table is None:
            self.prepare()
        assert self.table is not None
        s, n, table = self.shape, len(self.share), self.table
        width = 1 << s.index_bits
        k1 = self.extension.keys[: n * s.ots].reshape(n, s.ots, BLOCK)
        k0 = self.extension.keys0[: n * s.ots].reshape(n, s.ots, BLOCK)
        b_mine = u128.widen(self.m2, signed=True)  # m2 - 2^64
        out = np.empty((n, s.entry_words()), dtype=np.uint64)
        product_share = np.empty((n, 2), dtype=np.uint64)
        at_bits = np.arange(s.shift, dtype=np.uint64)[None, :]

        def chunk(a: int) -> None:
            b = min(a + _CHUNK_ROWS, n)
            masks = _line_masks(k0[a:b, : s.index_bits], k1[a:b, : s.index_bits], a, self.session)
            out[a:b, : 2 * width].reshape(b - a, width, 2)[:] = table[a:b] + masks
            g0 = _hash2(k0[a:b, s.index_bits:], a, at_bits, self.session, b"product")
            g1 = _hash2(k1[a:b, s.index_bits:], a, at_bits, self.session, b"product")
            shifted = u128.shl(np.broadcast_to(b_mine[a:b, None, :], (b - a, s.shift, 2)).copy(),
                               np.broadcast_to(at_bits, (b - a, s.shift)))
            out[a:b, 2 * width:] = u128.add(u128.sub(g0, g1), shifted).reshape(b - a, -1)
            product_share[a:b] = u128.neg(u128.sum_rows(g0, axis=1))

        map_chunks(chunk, range(0, n, _CHUNK_ROWS))
        self.table = None
        return out, u128.add(u128.widen(self.m1, signed=True), u128.truncate(product_share, s.score_bits, first=True))


def _line_masks(k0: np.ndarray, k1: np.ndarray, first_row: int, session: bytes) -> np.ndarray:
    """``(rows, 2^k, 2)``: the 128-bit mask of every entry ``x`` of each row, the hash of
    ``XOR_l K_l^(x_l)`` under the tweak (row, ``x``); the XOR combinations by doubling."""
    rows, k = k0.shape[:2]
    w0, w1 = k0.view(np.uint64).reshape(rows, k, 2), k1.view(np.uint64).reshape(rows, k, 2)
    t = np.zeros((rows, 1, 2), dtype=np.uint64)
    for bit in range(k):  # bit `bit` becomes the high bit of the doubled list
        t = np.concatenate([t ^ w0[:, bit][:, None, :], t ^ w1[:, bit][:, None, :]], axis=1)
    return _hash2(t.view(np.uint8).reshape(rows, 1 << k, BLOCK), first_row,
                  np.arange(1 << k, dtype=np.uint64)[None, :], session, b"line")


def run_extension(sender: SigmoidSender, receiver: SigmoidReceiver) -> None:
    """Both sides' OT extension in one process (tests)."""
    sender_ext, receiver_ext = sender.extension, receiver.extension
    receiver_ext.accept_base_points(sender_ext.base_points(receiver_ext.base_message))
    for a, b in chunks_of(receiver_ext.n):
        sender_ext.accept_columns(a, receiver_ext.columns(a, b))
