"""The label party (the bank) of vertical LR: its labels and bins, its coefficients in the clear,
its share of the feature party's coefficients."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence

import numpy as np

from misuan.errors import DataError, MalformedMessageError
from misuan.net.channel import Channel
from misuan.protocols.vertical_lr import blocks, u128
from misuan.protocols.vertical_lr import disclosures as D
from misuan.protocols.vertical_lr.bin_shares import Chooser, Holder
from misuan.protocols.vertical_lr.encoding import Encoding, per_feature, woe_values
from misuan.protocols.vertical_lr.exchange import Link
from misuan.protocols.vertical_lr.lbfgs import LbfgsTrace, run_lbfgs
from misuan.protocols.vertical_lr.messages import STEP, BinRows, Kappa, Schema, Setup, Shares, WoeTable
from misuan.protocols.vertical_lr.params import TrainingParams
from misuan.protocols.vertical_lr.shared_vectors import (
    MOD,
    SCALE_BITS,
    Shared,
    decode_int,
    encode_int,
    scale_share,
    score_words,
    truncate_share,
)
from misuan.protocols.vertical_lr.sigmoid_table import SigmoidSender

__all__ = ["BankModel", "train_label_party"]

P_BITS = 20  # fractional bits of p (the sigmoid table's p_bits must match)


@dataclasses.dataclass
class BankModel:
    coef: np.ndarray  # the intercept, then one per bin of each of the bank's features
    iterations: int
    losses: list[float]
    partner_n_bins: list[int]  # the partner's bins per feature (from its schema)
    encoded_coef: np.ndarray  # what the optimiser fitted: ``coef`` (dummy encoding), or the intercept and one per feature
    woe: list[np.ndarray] | None = None  # WOE encoding: each of the bank's features' bins' WOE


def own_encoding(rows: np.ndarray, events: np.ndarray, ext_n_bins: Sequence[int], encoding: str) -> Encoding:
    """The bank's encoding of its intercept (first) and features, from its rows and events per bin
    (the intercept's bin first): WOE from its own labels, in the clear."""
    if encoding == "dummy":
        return Encoding.dummy(ext_n_bins)
    return Encoding.woe(ext_n_bins, [np.ones(1), *woe_values(rows[1:], events[1:], ext_n_bins[1:])])


def initial_loss(n: int, base_rate: float) -> float:
    """The log loss at the start (the intercept at the base rate), from the rounded base rate both
    parties know: the denominator of the stopping rule, the same on both sides."""
    return -n * (base_rate * math.log(base_rate) + (1 - base_rate) * math.log(1 - base_rate))


class _BankOps:
    first = True

    def __init__(self, link: Link, bins: np.ndarray, n_bins: Sequence[int], y: np.ndarray, params: TrainingParams,
                 partner_bins: list[int]) -> None:
        self.link, self.params, self.y = link, params, y.astype(np.float64)
        self.n = len(y)
        self.base_rate = min(max(round(float(self.y.mean()), 2), 0.01), 0.99)
        self.s0 = self.base_rate * (1 - self.base_rate)
        ext_bins = np.hstack([np.zeros((self.n, 1), dtype=np.int64), bins.astype(np.int64)])
        self.ext_n_bins = [1, *n_bins]
        self.cells, offsets = blocks.one_hot_cells(ext_bins, self.ext_n_bins)
        self.width = int(offsets[-1])
        flat = self.cells.reshape(-1)
        self.aty = np.bincount(flat, weights=np.repeat(self.y, self.cells.shape[1]), minlength=self.width)
        self.enc = own_encoding(np.bincount(flat, minlength=self.width), self.aty, self.ext_n_bins, params.encoding)
        penalties = np.full(self.enc.size, params.lam)
        penalties[0] = 0.0
        self.penalties = penalties
        self.block = blocks.own_block(self.cells, self.width, self.s0, penalties,
                                      None if self.enc.values is None else self.enc.matrix)
        self.partner_bins = partner_bins
        self.partner_width = int(sum(partner_bins))
        p0 = float(np.clip(self.y.mean(), 1e-6, 1 - 1e-6))
        self.w = np.zeros(self.enc.size)
        self.w[0] = math.log(p0 / (1 - p0))  # the intercept's bin and its encoding are 1 in every row
        self.set_partner_encoding(Encoding.dummy(partner_bins))
        self.ext_bins = ext_bins
        self.kappa_p = 0.0
        self.holder: Holder | None = None
        self.chooser: Chooser | None = None

    def set_partner_encoding(self, enc: Encoding) -> None:
        self.partner_enc = enc
        self.w_share = [0] * enc.size

    def connect(self) -> None:
        """The two OT extensions of the setup: for the partner's bins (it chooses), for the bank's."""
        self.holder = self.link.bins_as_holder(self.n, self.partner_bins)
        self.chooser = self.link.bins_as_chooser(self.ext_bins, self.ext_n_bins)

    def share_woe(self) -> None:
        """WOE encoding: the labels scattered into the partner's bins and the sums opened to both; with
        the partner's row counts, both compute the WOE of its bins (the map of its coefficients)."""
        assert self.holder is not None
        y_words = u128.widen(self.y.astype(np.int64).view(np.uint64), signed=True)
        corrections, held = self.holder.scatter(self.link.next_use(), y_words)
        self.link.send_rows(corrections, D.WOE_LABELS)
        theirs = self.link.exchange_shares(held, True, D.WOE_EVENTS)
        events = np.array([decode_int(v, 0) for v in u128.to_ints(u128.add(held, theirs))])
        msg = self.link.recv(BinRows, D.WOE_ROWS, (self.partner_width,))
        assert isinstance(msg, BinRows)
        rows = msg.rows
        if not isinstance(rows, np.ndarray) or rows.dtype != np.int64 or rows.shape != (self.partner_width,) \
                or np.any(rows < 0) or any(r.sum() != self.n for r in per_feature(rows, self.partner_bins)):
            raise MalformedMessageError("the partner's rows per bin are not one count per bin adding up to its rows")
        if np.any(events < 0) or np.any(events > rows) \
                or any(e.sum() != self.y.sum() for e in per_feature(events, self.partner_bins)):
            raise MalformedMessageError("the partner's bins' event counts are impossible (its share is corrupt)")
        enc = Encoding.woe(self.partner_bins, woe_values(rows, events, self.partner_bins))
        self.link.send(WoeTable(enc.multipliers), D.WOE_TABLE, (self.partner_width,))
        self.set_partner_encoding(enc)

    def probabilities(self) -> np.ndarray:
        """This side's shares of ``p`` mod 2^128 (``(rows, 2)``)."""
        assert self.holder is not None
        shape = self.params.table
        a = score_words(self.partner_enc.expand_share(self.w_share, True), shape.score_bits, True)
        corrections, held = self.holder.lookup(self.link.next_use(), per_feature(a, self.partner_bins))
        self.link.send_rows(corrections, D.LOOKUP)
        scores = self.enc.expand(self.w)[self.cells].sum(axis=1)
        z = np.rint(scores * 2.0**shape.score_bits).astype(np.int64).view(np.uint64) + held.astype(np.uint64)
        sender = SigmoidSender(z, shape, self.link.next_session())
        self.link.extend_as_sender(sender.extension)
        entries, mine = sender.entries()
        self.link.send_rows(entries, D.TABLE)
        return mine

    def gradient(self) -> Shared:
        assert self.holder is not None and self.chooser is not None
        p = self.probabilities()
        # the partner's block: the bank's p - y scattered into the partner's bins
        y_words = u128.widen((self.y * 2**P_BITS).astype(np.int64).view(np.uint64), signed=True)
        corrections, held = self.holder.scatter(self.link.next_use(), u128.sub(p, y_words))
        self.link.send_rows(corrections, D.SCATTER)
        # M^T at p's scale, before the shift: the truncation's operands stay near 2^74, far inside the ring
        share = [(v << SCALE_BITS - P_BITS) % MOD for v in self.partner_enc.collapse_share(u128.to_ints(held), True)]
        share = [(g + r) % MOD for g, r in zip(share, scale_share(self.w_share, self.params.lam, True), strict=True)]
        # the bank's block: the partner's p scattered into the bank's bins, its sums' shares sent over
        use = self.link.next_use()
        theirs = self.link.recv_rows((self.n, len(self.ext_n_bins), 2), D.SCATTER)
        msg = self.link.recv(Shares, D.OWN_GRADIENT, (self.width,))
        assert isinstance(msg, Shares)
        if not isinstance(msg.words, np.ndarray) or msg.words.dtype != np.uint64 or msg.words.shape != (self.width, 2):
            raise MalformedMessageError("the partner's shares of the bank's bin sums have the wrong shape")
        total = u128.add(u128.add(msg.words, self.chooser.scatter(use, theirs)), u128.bin_sums(self.cells, p, self.width))
        atp = np.array([decode_int(v, P_BITS) for v in u128.to_ints(total)])
        return Shared(self.enc.collapse(atp - self.aty) + self.penalties * self.w, share)

    def inner(self, us: list[Shared], v: Shared) -> list[float]:
        if not us:
            return []
        assert v.bank is not None
        m1 = self.link.product_matrix_side(np.stack([u.words() for u in us]))
        v2 = self.link.product_vector_side(v.words(), len(us))
        mine = []
        for k, u in enumerate(us):
            assert u.bank is not None
            local = sum(x * y for x, y in zip(u.share, v.share, strict=True))
            mine.append(local + u128.to_ints(m1[k:k + 1])[0] + u128.to_ints(v2[k:k + 1])[0]
                        + encode_int(float(u.bank @ v.bank), 2 * SCALE_BITS))
        words = u128.from_ints(mine)
        theirs = self.link.exchange_shares(words, True, D.OPENED)
        return [decode_int(a + b, 2 * SCALE_BITS) for a, b in zip(mine, u128.to_ints(theirs), strict=True)]

    def precondition(self, q: Shared) -> Shared:
        assert q.bank is not None
        t_bank_block = self.block.inverse @ q.bank
        # the partner block at Q_BITS, the bank's share re-shared short: q = short + (partner's + delta)
        q_low = [truncate_share(v, SCALE_BITS - blocks.Q_BITS, True) for v in q.share]
        short = [int.from_bytes(os.urandom(16), "big") >> (128 - blocks.SHORT_BITS) for _ in q_low]
        self.link.send(Shares(u128.from_ints([(a - b) % MOD for a, b in zip(q_low, short, strict=True)])),
                       D.RESHARE, (len(short),))
        held = self.link.product_vector_side(u128.from_ints(short), self.partner_enc.size + 1, bits=blocks.SHORT_BITS)
        ints = u128.to_ints(held)  # [D_p^{-1}; u_p^T] short, at PRODUCT_BITS
        t_share = [truncate_share(x, blocks.PRODUCT_BITS - SCALE_BITS, True) for x in ints[:-1]]
        pi_b = float(self.block.counts @ t_bank_block)
        mine = [ints[-1], encode_int(pi_b, blocks.PRODUCT_BITS)]
        theirs = u128.to_ints(self.link.exchange_shares(u128.from_ints(mine), True, D.OPENED))
        pi_p, pi_b_opened = (decode_int(a + b, blocks.PRODUCT_BITS) for a, b in zip(mine, theirs, strict=True))
        g1, _ = blocks.gamma(self.s0, self.n, self.block.kappa, self.kappa_p, pi_b_opened, pi_p)
        return Shared(t_bank_block - self.block.u * g1, t_share)

    def step(self, d: Shared) -> None:
        assert d.bank is not None
        self.w = self.w + d.bank
        self.w_share = [(w + x) % MOD for w, x in zip(self.w_share, d.share, strict=True)]


def train_label_party(chan: Channel, peer: str, bins: np.ndarray, n_bins: Sequence[int], y: np.ndarray,
                      params: TrainingParams, *, step: str = STEP) -> BankModel:
    """The bank's side of a training: ``bins`` (``(rows, features)``, each in ``0..n_bins[f]-1``) and
    0/1 labels ``y`` of the rows aligned with the partner's."""
    if bins.ndim != 2 or bins.shape[0] != len(y) or bins.shape[1] != len(n_bins):
        raise DataError("the bank's bins are (rows, features) with one label per row")
    if bins.size and (bins.min() < 0 or np.any(bins.max(axis=0) >= np.asarray(n_bins))):
        raise DataError("a bank bin index is outside its feature's bins")
    if not np.isin(y, (0, 1)).all() or y.min() == y.max():
        raise DataError("labels must be 0/1 with both classes present")
    link = Link(chan, peer, step, b"")
    schema = link.recv(Schema, D.SCHEMA, (1,))
    assert isinstance(schema, Schema)
    if schema.n_rows != len(y):
        raise DataError(f"the partner has {schema.n_rows} rows, the bank {len(y)}: both must pass the intersection")
    if not schema.n_bins or any(not (1 <= int(b) <= 256) for b in schema.n_bins):
        raise MalformedMessageError("the partner's bins per feature must be 1..256 each")
    ops = _BankOps(link, bins, n_bins, y, params, [int(b) for b in schema.n_bins])
    session = os.urandom(16)
    link.send(Setup(len(y), ops.ext_n_bins, ops.base_rate, ops.block.kappa, np.frombuffer(session, np.uint8).copy(),
                    params.as_list()), D.SCHEMA, (len(ops.ext_n_bins),))
    chan.disclose(step, D.BASE_RATE, chan.party, peer)
    chan.disclose(step, D.KAPPA, chan.party, peer)
    link.session = session
    ops.connect()
    if params.encoding == "woe":
        ops.share_woe()
    kappa = link.recv(Kappa, D.KAPPA)  # after the encodings: the partner's block is of its encoded design
    assert isinstance(kappa, Kappa)
    if not np.isfinite(kappa.kappa) or kappa.kappa < 0:  # 0 is possible: WOE-encoded features of one bin each
        raise MalformedMessageError("the partner's kappa is not a non-negative number")
    ops.kappa_p = float(kappa.kappa)
    trace: LbfgsTrace = run_lbfgs(ops, initial_loss(ops.n, ops.base_rate), params.memory, params.max_iter, params.tol)
    link.send(Shares(u128.from_ints(ops.w_share)), D.COEFFICIENTS, (ops.partner_enc.size,))
    woe = None if ops.enc.values is None else list(ops.enc.values[1:])
    return BankModel(ops.enc.expand(ops.w), trace.iterations, trace.losses, list(ops.partner_bins), ops.w.copy(), woe)
