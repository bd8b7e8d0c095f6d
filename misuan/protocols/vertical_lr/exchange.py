"""The exchanges both roles share: OT extensions in either direction, per-row arrays in chunks,
Gilboa products, and opening shares; each records what crosses in the ledger."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from misuan.crypto.ot import POINT_BYTES
from misuan.crypto.ot_extension import (
    BASE_OTS,
    ExtensionReceiver,
    ExtensionSender,
    ReceiverBase,
    SenderBase,
    chunks_of,
)
from misuan.errors import MalformedMessageError
from misuan.net.channel import Channel
from misuan.net.disclosure import DisclosureKind
from misuan.protocols.secureboost.shares import choice_bits
from misuan.protocols.vertical_lr import disclosures as D
from misuan.protocols.vertical_lr import products, u128
from misuan.protocols.vertical_lr.bin_shares import Chooser, Holder
from misuan.protocols.vertical_lr.messages import (
    CHUNK_BYTES,
    OtBase,
    OtColumns,
    OtPoints,
    Products,
    RowWords,
    Shares,
)

__all__ = ["Link", "ZeroSumMasks", "open_at_label_party"]


class Link:
    """One party's side of the conversation with its peer: a step name, a session for the OT
    extensions (a fresh sub-session each, counted the same way on both sides).

    Base OTs run once per direction: the first extension in which this side receives (and the first
    in which it sends) keeps its base, and every later one in that direction continues it
    (:mod:`misuan.crypto.ot_extension`, "One set of base OTs for many extensions"). Both sides see
    the same sequence of extensions, so they agree on when the base OTs run without a message."""

    def __init__(self, chan: Channel, peer: str, step: str, session: bytes) -> None:
        self.chan, self.peer, self.step, self.session = chan, peer, step, session
        self.count = 0
        self.uses = 0
        self._receiver_base: ReceiverBase | None = None
        self._sender_base: SenderBase | None = None

    def next_use(self) -> int:
        """The number of the next lookup or scatter (their pads' key): counted alike on both sides."""
        self.uses += 1
        return self.uses

    def bins_as_holder(self, n_rows: int, n_bins: Sequence[int]) -> Holder:
        """The setup of the peer's bins (the peer chooses): this side gets every key."""
        session = self.next_session()
        sender = ExtensionSender(n_rows * int(sum(n_bins)), session)
        self.extend_as_sender(sender)
        return Holder(sender.keys, n_rows, n_bins, session)

    def bins_as_chooser(self, bins: np.ndarray, n_bins: Sequence[int]) -> Chooser:
        """The setup of this side's bins: it gets every key but its own bin's."""
        session = self.next_session()
        receiver = ExtensionReceiver(choice_bits(bins, n_bins), session)
        self.extend_as_receiver(receiver)
        return Chooser(receiver.keys, bins, n_bins, session)

    def next_session(self) -> bytes:
        self.count += 1
        return hashlib.sha256(b"misuan-vertical-lr-session" + self.session + self.count.to_bytes(8, "big")).digest()[:16]

    def send(self, msg: object, kind: DisclosureKind | None = None, shape: tuple[int, ...] = ()) -> None:
        self.chan.send(self.peer, self.step, msg)
        if kind is not None:
            self.chan.disclose(self.step, kind, self.chan.party, self.peer, shape)

    def recv(self, expect: type, kind: DisclosureKind | None = None, shape: tuple[int, ...] = ()) -> object:
        msg = self.chan.recv(self.peer, self.step, expect=expect)
        if kind is not None:
            self.chan.disclose(self.step, kind, self.peer, self.chan.party, shape)
        return msg

    # --- OT extensions ------------------------------------------------------------------------
    def extend_as_receiver(self, receiver: ExtensionReceiver) -> None:
        if self._receiver_base is None:
            self._base_ots_as_receiver(receiver)
            self._receiver_base = receiver.base
        else:
            receiver.continue_from(self._receiver_base)
        for a, b in chunks_of(receiver.n):
            self.send(OtColumns(a, receiver.columns(a, b)), D.OT_COLUMNS, (b - a,))

    def extend_as_sender(self, sender: ExtensionSender) -> None:
        if self._sender_base is None:
            self._base_ots_as_sender(sender)
            self._sender_base = sender.base
        else:
            sender.continue_from(self._sender_base)
        for a, b in chunks_of(sender.n):
            cols = self.recv(OtColumns, D.OT_COLUMNS, (b - a,))
            assert isinstance(cols, OtColumns)
            if cols.start != a:
                raise MalformedMessageError(f"{self.peer} sent OT-extension columns out of order")
            sender.accept_columns(a, cols.columns)

    def _base_ots_as_receiver(self, receiver: ExtensionReceiver) -> None:
        self.send(OtBase(np.frombuffer(receiver.base_message, dtype=np.uint8).copy()), D.OT_BASE, (POINT_BYTES,))
        pts = self.recv(OtPoints, D.OT_POINTS, (BASE_OTS, POINT_BYTES))
        assert isinstance(pts, OtPoints)
        if not isinstance(pts.points, np.ndarray) or pts.points.dtype != np.uint8 or pts.points.shape != (BASE_OTS, POINT_BYTES):
            raise MalformedMessageError(f"{self.peer} sent base-OT points that are not uint8 ({BASE_OTS}, {POINT_BYTES})")
        receiver.accept_base_points([bytes(row) for row in pts.points])

    def _base_ots_as_sender(self, sender: ExtensionSender) -> None:
        base = self.recv(OtBase, D.OT_BASE, (POINT_BYTES,))
        assert isinstance(base, OtBase)
        if not isinstance(base.point, np.ndarray) or base.point.dtype != np.uint8 or base.point.shape != (POINT_BYTES,):
            raise MalformedMessageError(f"{self.peer} sent a base-OT message that is not {POINT_BYTES} bytes")
        points = sender.base_points(base.point.tobytes())
        self.send(OtPoints(np.frombuffer(b"".join(points), dtype=np.uint8).reshape(BASE_OTS, POINT_BYTES).copy()),
                  D.OT_POINTS, (BASE_OTS, POINT_BYTES))

    # --- per-row arrays -----------------------------------------------------------------------
    def send_rows(self, words: np.ndarray, kind: DisclosureKind) -> None:
        per_row = max(1, words[:1].nbytes)
        step_rows = max(1, CHUNK_BYTES // per_row)
        for a in range(0, max(len(words), 1), step_rows):
            self.send(RowWords(a, np.ascontiguousarray(words[a : a + step_rows])))
        self.chan.disclose(self.step, kind, self.chan.party, self.peer, words.shape)

    def recv_rows(self, shape: tuple[int, ...], kind: DisclosureKind, dtype: type = np.uint64) -> np.ndarray:
        out: np.ndarray = np.empty(shape, dtype=dtype)
        at = 0
        while at < max(shape[0], 1):
            msg = self.recv(RowWords)
            assert isinstance(msg, RowWords)
            w = msg.words
            if msg.start != at or not isinstance(w, np.ndarray) or w.dtype != dtype or w.shape[1:] != shape[1:] \
                    or len(w) == 0 or at + len(w) > shape[0]:
                if shape[0] == 0 and msg.start == 0 and isinstance(w, np.ndarray) and len(w) == 0:
                    break
                raise MalformedMessageError(f"{self.peer} sent per-row words out of order or of the wrong shape")
            out[at : at + len(w)] = w
            at += len(w)
        self.chan.disclose(self.step, kind, self.peer, self.chan.party, shape)
        return out

    # --- products and openings ----------------------------------------------------------------
    def product_matrix_side(self, matrix: np.ndarray, bits: int = 128) -> np.ndarray:
        """This side's share of ``matrix @ x`` (the peer holds ``x``, of ``bits`` bits)."""
        side = products.MatrixSide(matrix, matrix.shape[1], self.next_session(), bits)
        self.extend_as_sender(side.extension)
        corrections, mine = side.corrections()
        self.send(Products(corrections), D.PRODUCT, corrections.shape[:2])
        return mine

    def product_vector_side(self, x: np.ndarray, n_rows: int, bits: int = 128) -> np.ndarray:
        """This side's share of ``M @ x`` (the peer holds ``M``, ``n_rows`` rows; ``x`` of ``bits`` bits)."""
        side = products.VectorSide(x, n_rows, self.next_session(), bits)
        self.extend_as_receiver(side.extension)
        msg = self.recv(Products, D.PRODUCT, (len(side.bits), n_rows))
        assert isinstance(msg, Products)
        return side.share(msg.corrections)

    def open_at_feature_party(self, mine: list[int], masks: ZeroSumMasks) -> list[int]:
        """Opening scalars (a feature party's side): its shares, masked, to the label party; the totals back."""
        pad = masks.next(len(mine))
        self.send(Shares(u128.from_ints([(a + b) % u128.MOD for a, b in zip(mine, pad, strict=True)])), D.OPENED,
                  (len(mine),))
        return u128.to_ints(self.words_of(self.recv(Shares, D.OPENED, (len(mine),)), (len(mine), 2)))

    def words_of(self, msg: object, shape: tuple[int, ...]) -> np.ndarray:
        if not isinstance(msg, Shares) or not isinstance(msg.words, np.ndarray) or msg.words.dtype != np.uint64 \
                or msg.words.shape != shape:
            raise MalformedMessageError(f"{self.peer} sent shares of the wrong shape")
        return msg.words

    def exchange_shares(self, words: np.ndarray, first: bool, kind: DisclosureKind) -> np.ndarray:
        """Send this side's shares, receive the peer's (the first party sends first)."""
        if first:
            self.send(Shares(words), kind, words.shape[:1])
        msg = self.recv(Shares, kind, words.shape[:1])
        assert isinstance(msg, Shares)
        if not isinstance(msg.words, np.ndarray) or msg.words.dtype != np.uint64 or msg.words.shape != words.shape:
            raise MalformedMessageError(f"{self.peer} sent shares of the wrong shape")
        if not first:
            self.send(Shares(words), kind, words.shape[:1])
        return msg.words



def open_at_label_party(links: Sequence[Link], mine: list[int]) -> list[int]:
    """Opening scalars (the label party's side): every feature party's (masked) shares added to its
    own, the totals sent back to each. With more than one feature party the masks cancel only in the
    total, so it learns no feature party's block alone."""
    total = list(mine)
    for link in links:
        theirs = u128.to_ints(link.words_of(link.recv(Shares, D.OPENED, (len(mine),)), (len(mine), 2)))
        total = [(a + b) % u128.MOD for a, b in zip(total, theirs, strict=True)]
    words = u128.from_ints(total)
    for link in links:
        link.send(Shares(words), D.OPENED, (len(mine),))
    return total


class ZeroSumMasks:
    """A feature party's masks on its shares of opened scalars. With one feature party there are
    none; with more, each but the lead adds a mask drawn from the seed the lead sent it (``sign``
    +1), and the lead subtracts every one of them (``sign`` -1, all the seeds), so that the masks
    cancel in the label party's total. Both ends of a seed count the openings alike."""

    def __init__(self, seeds: Sequence[bytes], sign: int) -> None:
        self.seeds, self.sign, self.count = list(seeds), sign, 0

    def next(self, n: int) -> list[int]:
        self.count += 1
        out = [0] * n
        for seed in self.seeds:
            stream = hashlib.shake_128(b"misuan-vertical-lr-masks" + seed + self.count.to_bytes(8, "big")).digest(16 * n)
            out = [(o + self.sign * int.from_bytes(stream[16 * k : 16 * k + 16], "big")) % u128.MOD for k, o in enumerate(out)]
        return out
