"""Oblivious-transfer extension (IKNP): millions of random OTs with the receiver's chosen bits, from 128 base OTs.

Ishai, Kilian, Nissim, Petrank, "Extending oblivious transfers efficiently" (CRYPTO 2003), in the
semi-honest form with a correlation-robust hash that libOTe and EMP run:

- **Base OTs** (:mod:`misuan.crypto.ot`, Chou-Orlandi): the extension *receiver* is their sender
  (seed pairs ``(k_i^0, k_i^1)``, ``i < 128``), the extension *sender* their receiver with 128
  secret bits ``D`` (its choice bits), getting ``k_i^{D_i}``.
- **Columns**: the receiver, with one choice bit ``c_j`` per OT ``j < N``, sends
  ``u_i = G(k_i^0) ^ G(k_i^1) ^ c`` (``G``: AES-128-CTR, :class:`~misuan.crypto.aes_prg.Keystreams`);
  the sender computes ``q_i = G(k_i^{D_i}) ^ D_i u_i``. As rows, one per OT:
  ``q_j = t_j ^ c_j D``, with ``t_j`` the rows of ``G(k_i^0)``.
- **Keys**: this module gives each side one 16-byte key per OT. The sender's is
  ``K_j = H(j, q_j ^ D)``, the receiver's ``H(j, t_j)``: equal to ``K_j`` exactly where ``c_j = 1``.
  Where ``c_j = 0`` the receiver holds ``H(j, q_j)`` instead, and ``K_j`` is pseudorandom to it: it
  would need ``D``. A sender built with ``both_keys`` also keeps ``H(j, q_j)`` (:attr:`keys0`): a
  random 1-out-of-2 OT, the receiver holding the key of its choice and nothing of the other. ``H`` is the fixed-key AES hash of :mod:`misuan.crypto.aes_prg` (correlation
  robust, Guo-Katz-Wang-Yu: enough against a semi-honest receiver, whose ``t_j`` are random), with a
  tweak from the session id and ``j``.

**One set of base OTs for many extensions** (:meth:`ExtensionReceiver.continue_from`,
:meth:`ExtensionSender.continue_from`): a protocol that runs extension after extension in the same
direction between the same two parties (vertical LR: several an iteration) keeps the first one's
base (:attr:`ExtensionReceiver.base`, :attr:`ExtensionSender.base`: the seeds' keystreams, and ``D``)
and lets the next ones continue the same keystreams where the last stopped. That is one IKNP
extension cut into segments: the columns of each segment are masked by keystream bytes never used
before, and every segment's hash tweaks carry its own session id, so the keys of two segments are
as independent as two ranges of one extension's. It saves 128 Chou-Orlandi OTs (~40 ms of Ed25519
per side on the measured 2-core AMD machine) and a round trip per extension. The segments must run
one after the other, in the same order on both sides (the keystreams are consumed in order).

So the receiver learns the sender's keys at the positions it chose and nothing at the others; the
sender learns nothing about the choice bits (each column is masked by the keystream of a seed it
lacks). Security model: semi-honest; 128-bit computational security (AES-128 as an ideal cipher for
the fixed-key hash, the base OTs under CDH in the Ed25519 group); the choice bits are the
receiver's input and may be anything.

Work and traffic: ``N`` OTs cost each side two (receiver) or one (sender) AES-CTR keystreams of
``16 N`` bytes, a bit-matrix transpose and ``N`` hashed blocks; the columns are ``16 N`` bytes on the
wire. Both sides run a chunk of :data:`CHUNK_OTS` OTs at a time; the caller moves the chunks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os

import numpy as np

from misuan.crypto.aes_prg import BLOCK, Keystreams, fixed_key_hash
from misuan.crypto.bitmatrix import transpose
from misuan.crypto.ot import POINT_BYTES, OtReceiver, OtSender
from misuan.errors import MalformedMessageError

__all__ = ["BASE_OTS", "CHUNK_OTS", "ExtensionReceiver", "ExtensionSender", "ReceiverBase", "SenderBase"]

BASE_OTS = 128  # the width of a row q_j, t_j: the security parameter
CHUNK_OTS = 1 << 18  # OTs per chunk of columns: 4 MiB of columns on the wire
SESSION_BYTES = 16
_DOMAIN = b"misuan-iknp-v1"


def _padded(n: int) -> int:
    """``n`` rounded up to whole bytes of 128 rows (the transpose works on 8x8 bit blocks)."""
    return -(-n // 128) * 128


def _tweaks(session: bytes, start: int, stop: int) -> np.ndarray:
    """The hash tweak of OTs ``start..stop-1``: 8 bytes of SHA-256 of a domain and the session (apart
    from KKRT-PSI's tweaks under the same fixed key), then ``j`` (64 bits, little-endian)."""
    out = np.empty((stop - start, 2), dtype="<u8")
    out[:, 0] = np.frombuffer(hashlib.sha256(_DOMAIN + session).digest()[:8], dtype="<u8")[0]
    out[:, 1] = np.arange(start, stop, dtype="<u8")
    return out.view(np.uint8)


def _check_session(session: bytes) -> bytes:
    if not isinstance(session, bytes) or len(session) != SESSION_BYTES:
        raise MalformedMessageError(f"an OT-extension session id is {SESSION_BYTES} bytes")
    return session


def chunks_of(n: int) -> list[tuple[int, int]]:
    """The ``(start, stop)`` OT ranges of the column chunks, in order (the last may be short)."""
    total = _padded(n)
    return [(a, min(a + CHUNK_OTS, total)) for a in range(0, total, CHUNK_OTS)]


@dataclasses.dataclass
class ReceiverBase:
    """What the extension receiver keeps of its base OTs: the keystreams of ``k_i^0`` and ``k_i^1``."""

    t: Keystreams
    t_other: Keystreams


@dataclasses.dataclass
class SenderBase:
    """What the extension sender keeps of its base OTs: ``D`` and the keystreams of ``k_i^{D_i}``."""

    delta_bits: np.ndarray
    g: Keystreams


class ExtensionReceiver:
    """The side with the choice bits: :attr:`base_message` out, :meth:`accept_base_points`, then
    :meth:`columns` of every chunk in order; :attr:`keys` holds ``H(j, t_j)``."""

    def __init__(self, choices: np.ndarray, session: bytes) -> None:
        c = np.asarray(choices)
        if c.ndim != 1 or c.dtype != np.uint8 or (c.size and int(c.max()) > 1):
            raise ValueError("choice bits are a 1-D uint8 array of 0s and 1s")
        self.n = c.size
        self.session = _check_session(session)
        self._choices = np.zeros(_padded(self.n), dtype=np.uint8)
        self._choices[: self.n] = c
        self._ot: OtSender | None = None
        self.keys = np.empty((_padded(self.n), BLOCK), dtype=np.uint8)
        self._t: Keystreams | None = None
        self._t_other: Keystreams | None = None
        self._chunks = set(chunks_of(self.n))
        self._sent = 0

    @property
    def base_message(self) -> bytes:
        """The base OTs' first message (drawn on first use: an extension that continues a base needs none)."""
        if self._ot is None:
            if self._t is not None:
                raise RuntimeError("an extension takes base OTs or continues a base, not both")
            self._ot = OtSender()
        return self._ot.message

    def accept_base_points(self, points: list[bytes]) -> None:
        if self._t is not None:
            raise RuntimeError("an extension takes base OTs or continues a base, not both")
        if len(points) != BASE_OTS or any(not isinstance(p, bytes) or len(p) != POINT_BYTES for p in points):
            raise MalformedMessageError(f"the OT extension needs {BASE_OTS} base-OT points of {POINT_BYTES} bytes")
        if self._ot is None:
            raise RuntimeError("base_message goes to the sender first")
        seeds = self._ot.keys(points)
        self._t = Keystreams([k0 for k0, _ in seeds])
        self._t_other = Keystreams([k1 for _, k1 in seeds])

    def continue_from(self, base: ReceiverBase) -> None:
        """Continue an earlier extension's keystreams instead of new base OTs (the module's docstring)."""
        if self._t is not None or self._ot is not None:
            raise RuntimeError("an extension takes base OTs or continues a base, not both")
        self._t, self._t_other = base.t, base.t_other

    @property
    def base(self) -> ReceiverBase:
        """This extension's base, for the next extension to continue (after this one's columns)."""
        if self._t is None or self._t_other is None:
            raise RuntimeError("no base yet: accept_base_points or continue_from first")
        return ReceiverBase(self._t, self._t_other)

    def columns(self, start: int, stop: int) -> np.ndarray:
        """The chunk's columns ``u_i`` (``(128, (stop - start) / 8)`` uint8); keeps the chunk's keys."""
        if self._t is None or self._t_other is None:
            raise RuntimeError("accept_base_points comes first")
        if start != self._sent or (start, stop) not in self._chunks:
            raise ValueError("columns are computed chunk after chunk, in order (chunks_of)")
        nbytes = (stop - start) // 8
        t_cols = self._t.next(nbytes)
        u = np.packbits(self._choices[start:stop])[None, :] ^ t_cols
        u ^= self._t_other.next(nbytes)
        self.keys[start:stop] = fixed_key_hash(transpose(t_cols), _tweaks(self.session, start, stop))
        self._sent = stop
        return u

    @property
    def complete(self) -> bool:
        return self._sent == _padded(self.n)


class ExtensionSender:
    """The side without choices: :meth:`base_points` for the receiver's base message, then
    :meth:`accept_columns` of every chunk in order; :attr:`keys` holds ``K_j = H(j, q_j ^ D)``."""

    def __init__(self, n: int, session: bytes, both_keys: bool = False) -> None:
        if n < 0:
            raise ValueError("the number of OTs is not negative")
        self.n = n
        self.session = _check_session(session)
        self._use_delta(np.unpackbits(np.frombuffer(os.urandom(BASE_OTS // 8), dtype=np.uint8)))
        self._ot: OtReceiver | None = None
        self.keys = np.empty((_padded(n), BLOCK), dtype=np.uint8)
        self.keys0 = np.empty((_padded(n) if both_keys else 0, BLOCK), dtype=np.uint8)
        self._g: Keystreams | None = None
        self._stops = dict(chunks_of(n))  # chunk start -> stop
        self._filled = 0

    def _use_delta(self, bits: np.ndarray) -> None:
        self._bits = bits
        self._delta = np.packbits(bits)  # D: 16 bytes, one choice bit per base OT
        self._mask = (bits * np.uint8(0xFF))[:, None]  # column i of u counts where D_i = 1

    def base_points(self, base_message: bytes) -> list[bytes]:
        if self._g is not None:
            raise RuntimeError("an extension takes base OTs or continues a base, not both")
        self._ot = OtReceiver(self._bits.tolist())
        points = self._ot.points(base_message)
        self._g = Keystreams(self._ot.keys())
        return points

    def continue_from(self, base: SenderBase) -> None:
        """Continue an earlier extension's keystream and ``D`` instead of new base OTs (the module's docstring)."""
        if self._g is not None or self._ot is not None:
            raise RuntimeError("an extension takes base OTs or continues a base, not both")
        self._use_delta(base.delta_bits)
        self._g = base.g

    @property
    def base(self) -> SenderBase:
        """This extension's base, for the next extension to continue (after this one's columns)."""
        if self._g is None:
            raise RuntimeError("no base yet: base_points or continue_from first")
        return SenderBase(self._bits, self._g)

    def accept_columns(self, start: int, u: np.ndarray) -> None:
        if self._g is None:
            raise RuntimeError("base_points comes first")
        if start != self._filled or start not in self._stops:
            raise MalformedMessageError("OT-extension columns must come chunk after chunk, in order")
        stop = self._stops[start]
        if not isinstance(u, np.ndarray) or u.dtype != np.uint8 or u.shape != (BASE_OTS, (stop - start) // 8):
            raise MalformedMessageError(f"OT-extension columns of OTs {start}..{stop} must be uint8 ({BASE_OTS}, {(stop - start) // 8})")
        q = self._g.next(u.shape[1]) ^ (u & self._mask)
        rows = transpose(q)
        if self.keys0.size:
            self.keys0[start:stop] = fixed_key_hash(rows, _tweaks(self.session, start, stop))
        rows ^= self._delta  # q_j ^ D: the key the receiver holds where it chose 1
        self.keys[start:stop] = fixed_key_hash(rows, _tweaks(self.session, start, stop))
        self._filled = stop

    @property
    def complete(self) -> bool:
        return self._filled == _padded(self.n)
