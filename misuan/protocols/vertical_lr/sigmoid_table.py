"""The sigmoid of a shared score by an oblivious table lookup: shares of ``p_i = sigma(z_i)``.

The score ``z_i = A_i + B_i mod 2^64`` is shared in fixed point with ``f`` fractional bits between
the *sender* (the label party: share ``A``) and the *receiver* (share ``B``), ``|z| < 2^(k-g-1)``.
Reduced mod ``2^(k+f-g)`` the sum is exact, and ``B mod 2^(k+f-g) = v * 2^(f-g) + low`` with the
receiver's index ``v`` (bits ``f-g .. f-g+k-1`` of ``B``, ``k`` bits) and its low bits ``low``. So
for every possible ``v`` the sender knows ``z`` up to ``low``: it builds the row's table
``T[v] = sigma(signed((A + v 2^(f-g) + 2^(f-g-1)) mod 2^(k+f-g)) / 2^f) - m_i`` (``low`` replaced by
its midpoint: an error in ``z`` of at most ``2^-(g+1)``, hence in ``p`` of at most ``2^-(g+3)``), and
the receiver obtains ``T[v]`` by a 1-out-of-2^k OT; the shares of ``p`` are ``m_i`` and ``T[v]``.

The 1-out-of-2^k OT (Naor and Pinkas's reduction to k 1-out-of-2 OTs): k random OTs per row from
IKNP (:mod:`misuan.crypto.ot_extension`, the sender keeping both keys), the receiver's choice bits
the bits of ``v``; the mask of entry ``x`` is ``H(x, XOR_l K_l^(x_l))``, which the receiver can form
for ``x = v`` only: every other ``x`` involves a key of a bit it did not choose. ``H`` is the tweaked
fixed-key hash (tweak: row and ``x``), as an ideal cipher. The sender sends ``2^k`` words a row
(``2^(k+3)`` bytes) and learns nothing (the extension hides the choice bits); the receiver learns
one one-time padded entry, ``p_i - m_i``, with ``m_i`` uniform.

Lifting: the sender's share ``m_i`` is uniform in ``[2^63, 2^64)``, so the receiver's ``p_i - m_i
mod 2^64`` is, as an integer, ``p_i + (2^64 - m_i)`` with the pad uniform in ``(0, 2^63]``: the two
shares add up to ``p_i + 2^64`` exactly, always, and become shares of ``p_i`` over the integers (the
sender's ``m_i - 2^64``), hence mod 2^128 (:func:`lift`), without the wrap-around bit a
uniform ``m_i`` would leave unknown. The price is statistical hiding: the receiver's value leans
towards ``p_i`` by at most ``2^(p_bits) / 2^63`` (``2^-43`` at the default 20 bits).

Costs per row: ``k`` OTs (``16 k`` bytes of columns), ``2^k`` hashes and words on the sender's
side, one hash on the receiver's. With ``k = 9, g = 4`` (scores within +-16, a 1/16 grid): 4 KiB a
row.
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np

from misuan.crypto.aes_prg import BLOCK, fixed_key_cipher, fixed_key_hash
from misuan.crypto.ot_extension import ExtensionReceiver, ExtensionSender, chunks_of
from misuan.errors import MalformedMessageError
from misuan.protocols.vertical_lr import u128
from misuan.protocols.vertical_lr.ring import random_words

__all__ = ["SigmoidReceiver", "SigmoidSender", "TableShape", "lift"]

_DOMAIN = b"misuan-vertical-lr-sigmoid-v1"
_CHUNK_ROWS = 512  # rows of one chunk of entries: 512 x 2^9 x 16 bytes of key combinations (4 MiB)


@dataclasses.dataclass(frozen=True)
class TableShape:
    """Fixed point of the score (``score_bits``) and of ``p`` (``p_bits``); a ``2^-grid_bits`` grid
    and ``index_bits`` bits of index, so scores within ``+-2^(index_bits - grid_bits - 1)``."""

    score_bits: int = 20
    grid_bits: int = 4
    index_bits: int = 9
    p_bits: int = 20

    def __post_init__(self) -> None:
        if not (0 < self.grid_bits < self.score_bits <= 40 and 2 <= self.index_bits <= 12 and 8 <= self.p_bits <= 40):
            raise ValueError(f"unusable sigmoid table shape {self}")

    @property
    def shift(self) -> int:
        return self.score_bits - self.grid_bits

    @property
    def score_limit(self) -> float:
        """Scores must stay strictly within +- this."""
        return 2.0 ** (self.index_bits - self.grid_bits - 1)

    def index(self, share: np.ndarray) -> np.ndarray:
        return ((share >> np.uint64(self.shift)) & np.uint64((1 << self.index_bits) - 1)).astype(np.int64)


def _tweak_word(session: bytes) -> np.uint64:
    return np.frombuffer(hashlib.sha256(_DOMAIN + session).digest()[:8], "<u8")[0]


def _receiver_masks(combo: np.ndarray, v: np.ndarray, session: bytes) -> np.ndarray:
    """The receiver's mask of its entry ``v`` of each row from its key combination (``(rows, 2)``
    uint64): :func:`fixed_key_hash` under the tweak ``(session word ^ row, v)``."""
    tw = np.empty((len(v), 2), dtype="<u8")
    tw[:, 0] = np.arange(len(v), dtype=np.uint64) ^ _tweak_word(session)
    tw[:, 1] = v.astype("<u8")
    return fixed_key_hash(combo.view(np.uint8).reshape(-1, BLOCK), tw.view(np.uint8)).view(np.uint64)[:, 0]


class SigmoidReceiver:
    """The side whose share indexes the table: the extension's receiver, then :meth:`receive`."""

    def __init__(self, share: np.ndarray, shape: TableShape, session: bytes) -> None:
        self.shape, self.session, self.n = shape, session, len(share)
        self.v = shape.index(share)
        bits = ((self.v[:, None] >> np.arange(shape.index_bits)) & 1).astype(np.uint8)
        self.extension = ExtensionReceiver(bits.reshape(-1), session)

    def receive(self, entries: np.ndarray) -> np.ndarray:
        """This side's share of ``p`` (uint64, ``p_bits`` fractional bits) from the sender's entries."""
        width = 1 << self.shape.index_bits
        if not isinstance(entries, np.ndarray) or entries.dtype != np.uint64 or entries.shape != (self.n, width):
            raise MalformedMessageError(f"sigmoid table entries must be uint64 ({self.n}, {width})")
        if not self.extension.complete:
            raise RuntimeError("the OT extension's columns come first")
        keys = self.extension.keys[: self.n * self.shape.index_bits].reshape(self.n, self.shape.index_bits, BLOCK)
        combo = np.bitwise_xor.reduce(keys.view(np.uint64), axis=1)  # (n, 2): XOR of the chosen keys
        return entries[np.arange(self.n), self.v] - _receiver_masks(np.ascontiguousarray(combo), self.v, self.session)


class SigmoidSender:
    """The side that builds each row's table from its own share: the extension's sender, then :meth:`entries`."""

    def __init__(self, share: np.ndarray, shape: TableShape, session: bytes) -> None:
        self.shape, self.session, self.share = shape, session, share
        self.extension = ExtensionSender(len(share) * shape.index_bits, session, both_keys=True)

    def values(self, rows: slice) -> np.ndarray:
        """``(rows, 2^k)`` float32: ``sigma`` at every index's score for the rows (midpoint of ``low``)."""
        s = self.shape
        bits = np.uint64(64 - s.index_bits - s.shift)
        x = np.arange(1 << s.index_bits, dtype=np.uint64) << np.uint64(s.shift)
        total = self.share[rows, None] + (x + np.uint64(1 << (s.shift - 1)))[None, :]
        signed = (total << bits).view(np.int64) >> np.int64(bits)  # sign-extended from k + f - g bits
        z = signed.astype(np.float32) * np.float32(-(2.0**-s.score_bits))
        np.exp(z, out=z)
        z += np.float32(1.0)
        return np.reciprocal(z, out=z)

    def entries(self) -> tuple[np.ndarray, np.ndarray]:
        """The entries to send (``(rows, 2^k)`` uint64) and this side's share of ``p`` (``(rows,)``)."""
        if not self.extension.complete:
            raise RuntimeError("the OT extension's columns come first")
        s, n = self.shape, len(self.share)
        width = 1 << s.index_bits
        k1 = self.extension.keys[: n * s.index_bits].reshape(n, s.index_bits, BLOCK).view(np.uint64)
        k0 = self.extension.keys0[: n * s.index_bits].reshape(n, s.index_bits, BLOCK).view(np.uint64)
        mine = random_words(n) | np.uint64(1 << 63)  # in the upper half: see the module's "lifting"
        out = np.empty((n, width), dtype=np.uint64)
        hasher = _EntryMasks(self.session, s.index_bits)
        for a in range(0, n, _CHUNK_ROWS):
            b = min(a + _CHUNK_ROWS, n)
            masks = hasher.masks(k0[a:b], k1[a:b], a)
            p = self.values(slice(a, b)) * np.float32(2.0**s.p_bits)
            np.add(masks, np.rint(p).astype(np.uint64), out=out[a:b])
            out[a:b] -= mine[a:b, None]
        return out, mine


class _EntryMasks:
    """The sender's masks ``H(x, XOR_l K_l^(x_l))`` of every entry ``x`` of a chunk of rows, fused: the
    hash's input (tweak XOR key combination) is the XOR of a table over the low index bits and one
    over the high bits, each with its share of the tweak folded in, so the ``2^k`` inputs of a row
    take one broadcast XOR; then one AES pass and the Matyas-Meyer-Oseas feed-forward (the same
    function as :func:`fixed_key_hash` with the tweak ``(session word ^ row, x)``)."""

    def __init__(self, session: bytes, index_bits: int) -> None:
        self.word = _tweak_word(session)
        self.low_bits, self.index_bits = index_bits // 2, index_bits
        self.cipher = fixed_key_cipher()
        self._buf = np.empty(0, dtype=np.uint8)

    def masks(self, k0: np.ndarray, k1: np.ndarray, first_row: int) -> np.ndarray:
        rows, width = k0.shape[0], 1 << self.index_bits
        low = _subset_xors(k0[:, : self.low_bits], k1[:, : self.low_bits])
        high = _subset_xors(k0[:, self.low_bits :], k1[:, self.low_bits :])
        low[:, :, 1] ^= np.arange(low.shape[1], dtype=np.uint64)[None, :]
        high[:, :, 1] ^= (np.arange(high.shape[1], dtype=np.uint64) << np.uint64(self.low_bits))[None, :]
        high[:, :, 0] ^= (np.arange(first_row, first_row + rows, dtype=np.uint64) ^ self.word)[:, None]
        n_bytes = rows * width * BLOCK
        if self._buf.size < 2 * n_bytes + BLOCK:
            self._buf = np.empty(2 * n_bytes + BLOCK, dtype=np.uint8)
        inputs = self._buf[:n_bytes].view(np.uint64).reshape(rows, high.shape[1], low.shape[1], 2)
        np.bitwise_xor(high[:, :, None, :], low[:, None, :, :], out=inputs)
        permuted = self._buf[n_bytes:]
        self.cipher.encrypt_into(self._buf[:n_bytes], permuted)
        first = permuted[:n_bytes].view(np.uint64)[::2]
        return (first ^ inputs.reshape(-1, 2)[:, 0]).reshape(rows, width)


def _subset_xors(k0: np.ndarray, k1: np.ndarray) -> np.ndarray:
    """``(rows, 2^m, 2)`` uint64 for ``m`` key pairs: at ``x``, the XOR over bits ``l`` of ``k1[l]``
    where ``x_l = 1`` else ``k0[l]`` (bit ``l`` of ``x`` is key pair ``l``)."""
    t = np.zeros((k0.shape[0], 1, 2), dtype=np.uint64)
    for bit in range(k0.shape[1]):  # bit `bit` becomes the high bit of the doubled list
        t = np.concatenate([t ^ k0[:, bit][:, None, :], t ^ k1[:, bit][:, None, :]], axis=1)
    return t


def lift(share: np.ndarray, sender: bool) -> np.ndarray:
    """A party's share of ``p`` mod 2^128 (:mod:`.u128` pairs) from its share mod 2^64."""
    return u128.widen(share, signed=sender)  # the sender's m_i - 2^64 is m_i read as negative


def run_extension(sender: SigmoidSender, receiver: SigmoidReceiver) -> None:
    """Both sides' OT extension in one process (tests and the in-process driver)."""
    sender_ext, receiver_ext = sender.extension, receiver.extension
    receiver_ext.accept_base_points(sender_ext.base_points(receiver_ext.base_message))
    for a, b in chunks_of(receiver_ext.n):
        sender_ext.accept_columns(a, receiver_ext.columns(a, b))
