"""The label party (the bank) of vertical LR: its labels and bins, its coefficients in the clear,
its share of each feature party's coefficients."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from misuan.errors import ConfigError, DataError, MalformedMessageError
from misuan.net.channel import Channel
from misuan.protocols.vertical_lr import blocks, u128
from misuan.protocols.vertical_lr import disclosures as D
from misuan.protocols.vertical_lr.bin_shares import Chooser, Holder
from misuan.protocols.vertical_lr.encoding import Encoding, per_feature, woe_values
from misuan.protocols.vertical_lr.exchange import Link, open_at_label_party
from misuan.protocols.vertical_lr.lbfgs import (
    LbfgsTrace,
    orthant_point,
    pseudo_gradient,
    run_lbfgs,
    run_owlqn,
)
from misuan.protocols.vertical_lr.messages import STEP, BinRows, Gamma, Kappa, Schema, Setup, Shares, WoeTable
from misuan.protocols.vertical_lr.params import TrainingParams
from misuan.protocols.vertical_lr.shared_vectors import (
    MOD,
    SCALE_BITS,
    Shared,
    Side,
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
    partner_n_bins: list[list[int]]  # each feature party's bins per feature (from its schema), in order
    encoded_coef: np.ndarray  # what the optimiser fitted: ``coef`` (dummy encoding), or the intercept and one per feature
    n_features: int  # every party's features (its own and each feature party's), as its setup told them
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


@dataclasses.dataclass
class _Partner:
    """The bank's view of one feature party: its link, bins, encoding and keys, and its kappa."""

    name: str
    link: Link
    n_bins: list[int]
    enc: Encoding
    holder: Holder | None = None
    kappa: float = 0.0

    @property
    def width(self) -> int:
        return int(sum(self.n_bins))


class _BankOps:
    first: Side = True

    def __init__(self, partners: list[_Partner], bins: np.ndarray, n_bins: Sequence[int], y: np.ndarray,
                 params: TrainingParams) -> None:
        self.partners, self.params, self.y = partners, params, y.astype(np.float64)
        self.lead = partners[0].link  # the sigmoid's and the bank's own gradient's peer
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
        unpenalised_intercept = np.r_[0.0, np.ones(self.enc.size - 1)]
        self.penalties = params.lam * unpenalised_intercept  # the smooth objective's L2
        self.l1_weights = params.l1 * unpenalised_intercept
        self.block = blocks.own_block(self.cells, self.width, self.s0, params.damping * unpenalised_intercept,
                                      None if self.enc.values is None else self.enc.matrix)
        p0 = float(np.clip(self.y.mean(), 1e-6, 1 - 1e-6))
        self.w = np.zeros(self.enc.size)
        self.w[0] = math.log(p0 / (1 - p0))  # the intercept's bin and its encoding are 1 in every row
        self.encodings_set()
        self.ext_bins = ext_bins
        self.chooser: Chooser | None = None

    def encodings_set(self) -> None:
        """The feature parties' blocks in the shared vectors (one after the other), their shares of the
        coefficients zero."""
        ends = np.cumsum([0, *(p.enc.size for p in self.partners)])
        self.at = [slice(int(a), int(b)) for a, b in zip(ends[:-1], ends[1:], strict=True)]
        self.w_share = [0] * int(ends[-1])

    def connect(self) -> None:
        """The OT extensions of the setup: for each feature party's bins (it chooses), and with the
        lead feature party for the bank's bins."""
        for part in self.partners:
            part.holder = part.link.bins_as_holder(self.n, part.n_bins)
        self.chooser = self.lead.bins_as_chooser(self.ext_bins, self.ext_n_bins)

    def share_woe(self, part: _Partner) -> None:
        """WOE encoding: the labels scattered into a feature party's bins and the sums opened to both;
        with its row counts, both compute the WOE of its bins (the map of its coefficients)."""
        assert part.holder is not None
        link, width = part.link, part.width
        y_words = u128.widen(self.y.astype(np.int64).view(np.uint64), signed=True)
        corrections, held = part.holder.scatter(link.next_use(), y_words)
        link.send_rows(corrections, D.WOE_LABELS)
        theirs = link.exchange_shares(held, True, D.WOE_EVENTS)
        events = np.array([decode_int(v, 0) for v in u128.to_ints(u128.add(held, theirs))])
        msg = link.recv(BinRows, D.WOE_ROWS, (width,))
        assert isinstance(msg, BinRows)
        rows = msg.rows
        if not isinstance(rows, np.ndarray) or rows.dtype != np.int64 or rows.shape != (width,) \
                or np.any(rows < 0) or any(r.sum() != self.n for r in per_feature(rows, part.n_bins)):
            raise MalformedMessageError(f"{part.name}'s rows per bin are not one count per bin adding up to its rows")
        if np.any(events < 0) or np.any(events > rows) \
                or any(e.sum() != self.y.sum() for e in per_feature(events, part.n_bins)):
            raise MalformedMessageError(f"{part.name}'s bins' event counts are impossible (its share is corrupt)")
        part.enc = Encoding.woe(part.n_bins, woe_values(rows, events, part.n_bins))
        link.send(WoeTable(part.enc.multipliers), D.WOE_TABLE, (width,))

    def probabilities(self) -> np.ndarray:
        """This side's shares of ``p`` mod 2^128 (``(rows, 2)``); the lead feature party holds the others."""
        shape = self.params.table
        held_sum = np.zeros(self.n, dtype=np.uint64)
        for part, at in zip(self.partners, self.at, strict=True):
            assert part.holder is not None
            a = score_words(part.enc.expand_share(self.w_share[at], True), shape.score_bits, True)
            corrections, held = part.holder.lookup(part.link.next_use(), per_feature(a, part.n_bins))
            part.link.send_rows(corrections, D.LOOKUP)
            held_sum += held.astype(np.uint64)
        scores = self.enc.expand(self.w)[self.cells].sum(axis=1)
        z = np.rint(scores * 2.0**shape.score_bits).astype(np.int64).view(np.uint64) + held_sum
        sender = SigmoidSender(z, shape, self.lead.next_session())
        with ThreadPoolExecutor(1) as pool:  # the lines while the lead's columns arrive
            lines = pool.submit(sender.prepare)
            self.lead.extend_as_sender(sender.extension)
            lines.result()
        entries, mine = sender.entries()
        self.lead.send_rows(entries, D.TABLE)
        return mine

    def gradient(self) -> Shared:
        assert self.chooser is not None
        p = self.probabilities()
        # each feature party's block: the bank's p - y scattered into its bins
        y_words = u128.widen((self.y * 2**P_BITS).astype(np.int64).view(np.uint64), signed=True)
        residual = u128.sub(p, y_words)
        share: list[int] = []
        outgoing = []
        for part in self.partners:
            assert part.holder is not None
            corrections, held = part.holder.scatter(part.link.next_use(), residual)
            outgoing.append(corrections)
            # M^T at p's scale, before the shift: the truncation's operands stay near 2^74, far inside the ring
            share += [(v << SCALE_BITS - P_BITS) % MOD for v in part.enc.collapse_share(u128.to_ints(held), True)]
        share = [(g + r) % MOD for g, r in zip(share, scale_share(self.w_share, self.params.lam, True), strict=True)]
        # the bank's block: the lead's p scattered into the bank's bins (sent while the bank computed the
        # above), and its sums' shares. Taken in full before the bank sends: both sending first could
        # block both once the messages outgrow the peer's mailbox
        use = self.lead.next_use()
        theirs = self.lead.recv_rows((self.n, len(self.ext_n_bins), 2), D.LEAD_SCATTER)
        msg = self.lead.recv(Shares, D.OWN_GRADIENT, (self.width,))
        words = self.lead.words_of(msg, (self.width, 2))
        for part, corrections in zip(self.partners, outgoing, strict=True):
            part.link.send_rows(corrections, D.SCATTER)
        del outgoing
        total = u128.add(u128.add(words, self.chooser.scatter(use, theirs)), u128.bin_sums(self.cells, p, self.width))
        if self.params.own_blocks:  # each feature party's gradient block opened to it, the bank keeping none
            for part, at in zip(self.partners, self.at, strict=True):
                part.link.send(Shares(u128.from_ints(share[at])), D.OWN_BLOCK_GRADIENT, (part.enc.size,))
            share = [0] * len(share)
        atp = np.array([decode_int(v, P_BITS) for v in u128.to_ints(total)])
        self.prefetch_next()
        return Shared(self.enc.collapse(atp - self.aty) + self.penalties * self.w, share)

    def prefetch_next(self) -> None:
        """The next gradient's key-only parts (each link's uses follow this one's in a fixed order:
        the lookup, the scatter into the partner's bins, with the lead the scatter into the bank's),
        computed while the optimiser's products and openings run."""
        for part in self.partners:
            assert part.holder is not None
            part.holder.prefetch("lookup", part.link.uses + 1)
            part.holder.prefetch("scatter", part.link.uses + 2)
        assert self.chooser is not None
        self.chooser.prefetch("scatter", self.lead.uses + 3)

    def inner(self, us: list[Shared], v: Shared) -> list[float]:
        if not us:
            return []
        assert v.bank is not None
        mine = []
        for u in us:
            assert u.bank is not None
            mine.append(sum(x * y for x, y in zip(u.share, v.share, strict=True))
                        + encode_int(float(u.bank @ v.bank), 2 * SCALE_BITS))
        for part, at in zip(self.partners, self.at, strict=True):  # the cross terms of each block
            m1 = part.link.product_matrix_side(np.stack([u128.from_ints(u.share[at]) for u in us]))
            v2 = part.link.product_vector_side(u128.from_ints(v.share[at]), len(us))
            mine = [x + a + b for x, a, b in zip(mine, u128.to_ints(m1), u128.to_ints(v2), strict=True)]
        total = open_at_label_party([p.link for p in self.partners], mine)
        return [decode_int(t, 2 * SCALE_BITS) for t in total]

    def precondition(self, q: Shared) -> Shared:
        assert q.bank is not None
        t_bank_block = self.block.inverse @ q.bank
        t_share: list[int] = []
        pi_shares = []
        for part, at in zip(self.partners, self.at, strict=True):
            if self.params.own_blocks:  # the partner holds its block: its product is its own
                t_share += [0] * part.enc.size
                pi_shares.append(0)
                continue
            # its block at Q_BITS, the bank's share re-shared short: q = short + (its share + delta)
            q_low = [truncate_share(v, SCALE_BITS - blocks.Q_BITS, True) for v in q.share[at]]
            short = [int.from_bytes(os.urandom(16), "big") >> (128 - blocks.SHORT_BITS) for _ in q_low]
            part.link.send(Shares(u128.from_ints([(a - b) % MOD for a, b in zip(q_low, short, strict=True)])),
                           D.RESHARE, (len(short),))
            held = part.link.product_vector_side(u128.from_ints(short), part.enc.size + 1, bits=blocks.SHORT_BITS)
            ints = u128.to_ints(held)  # [D_p^{-1}; u_p^T] short, at PRODUCT_BITS
            t_share += [truncate_share(x, blocks.PRODUCT_BITS - SCALE_BITS, True) for x in ints[:-1]]
            pi_shares.append(ints[-1])
        pis = [float(self.block.counts @ t_bank_block)]
        for part, mine in zip(self.partners, pi_shares, strict=True):
            theirs = u128.to_ints(part.link.words_of(part.link.recv(Shares, D.PROJECTION, (1,)), (1, 2)))[0]
            pis.append(decode_int(mine + theirs, blocks.PRODUCT_BITS))
        g = blocks.gamma(self.s0, self.n, [self.block.kappa, *(p.kappa for p in self.partners)], pis)
        for part, gi in zip(self.partners, g[1:], strict=True):
            part.link.send(Gamma(gi), D.GAMMA)
        return Shared(t_bank_block - self.block.u * g[0], t_share)

    # --- L1 (OWL-QN, own blocks: the bank's share of every feature party's block is zero) ---------
    def pseudo_gradient(self, g: Shared) -> Shared:
        assert g.bank is not None
        return Shared(pseudo_gradient(self.w, g.bank, self.l1_weights), [0] * len(g.share))

    def constrain(self, d: Shared, pg: Shared) -> Shared:
        assert d.bank is not None and pg.bank is not None
        # the unpenalised intercept is left free, as L-BFGS would (only L1's coordinates keep to the orthant)
        return Shared(np.where((d.bank * pg.bank < 0) | (self.l1_weights == 0), d.bank, 0.0), [0] * len(d.share))

    def orthant_step(self, d: Shared, pg: Shared, t: float) -> Shared:
        assert d.bank is not None and pg.bank is not None
        return Shared(orthant_point(self.w, t * d.bank, pg.bank, self.l1_weights) - self.w, [0] * len(d.share))

    def l1_norm(self) -> float:
        mine = encode_int(float(self.l1_weights @ np.abs(self.w)), 2 * SCALE_BITS)
        return decode_int(open_at_label_party([p.link for p in self.partners], [mine])[0], 2 * SCALE_BITS)

    def step(self, d: Shared) -> None:
        assert d.bank is not None
        self.w = self.w + d.bank
        self.w_share = [(w + x) % MOD for w, x in zip(self.w_share, d.share, strict=True)]


def train_label_party(chan: Channel, feature_parties: str | Sequence[str], bins: np.ndarray, n_bins: Sequence[int],
                      y: np.ndarray, params: TrainingParams, *, step: str = STEP) -> BankModel:
    """The bank's side of a training: ``bins`` (``(rows, features)``, each in ``0..n_bins[f]-1``) and
    0/1 labels ``y`` of the rows aligned with every feature party's (one name, or several: the first
    is the lead, :mod:`misuan.protocols.vertical_lr`)."""
    names = [feature_parties] if isinstance(feature_parties, str) else list(feature_parties)
    if not names or len(set(names)) != len(names) or chan.party in names:
        raise ConfigError(f"the feature parties must be one or more distinct parties other than {chan.party}: {names}")
    if bins.ndim != 2 or bins.shape[0] != len(y) or bins.shape[1] != len(n_bins):
        raise DataError("the bank's bins are (rows, features) with one label per row")
    if bins.size and (bins.min() < 0 or np.any(bins.max(axis=0) >= np.asarray(n_bins))):
        raise DataError("a bank bin index is outside its feature's bins")
    if not np.isin(y, (0, 1)).all() or y.min() == y.max():
        raise DataError("labels must be 0/1 with both classes present")
    partners = []
    for name in names:
        link = Link(chan, name, step, b"")
        schema = link.recv(Schema)
        assert isinstance(schema, Schema)
        chan.disclose(step, D.SCHEMA, name, chan.party, (len(schema.n_bins) if isinstance(schema.n_bins, list) else 0,))
        if schema.n_rows != len(y):
            raise DataError(f"{name} has {schema.n_rows} rows, the bank {len(y)}: all must pass the intersection")
        if not isinstance(schema.n_bins, list) or not schema.n_bins or any(not (1 <= int(b) <= 256) for b in schema.n_bins):
            raise MalformedMessageError(f"{name}'s bins per feature must be 1..256 each")
        nb = [int(b) for b in schema.n_bins]
        partners.append(_Partner(name, link, nb, Encoding.dummy(nb)))
    ops = _BankOps(partners, bins, n_bins, y, params)
    n_features = len(n_bins) + sum(len(p.n_bins) for p in partners)
    for part in partners:
        session = os.urandom(16)
        part.link.send(Setup(len(y), ops.ext_n_bins, ops.base_rate, np.frombuffer(session, np.uint8).copy(),
                             params.as_list(), names, n_features), D.SCHEMA, (len(ops.ext_n_bins),))
        chan.disclose(step, D.BASE_RATE, chan.party, part.name)
        part.link.session = session
    ops.connect()
    if params.encoding == "woe":
        for part in partners:
            ops.share_woe(part)
    ops.encodings_set()
    for part in partners:
        kappa = part.link.recv(Kappa, D.KAPPA)  # after the encodings: its block is of its encoded design
        assert isinstance(kappa, Kappa)
        if not isinstance(kappa.kappa, float) or not np.isfinite(kappa.kappa) or kappa.kappa < 0:
            # 0 is possible: WOE-encoded features of one bin each
            raise MalformedMessageError(f"{part.name}'s kappa is not a non-negative number")
        part.kappa = float(kappa.kappa)
    try:
        run = run_owlqn if params.penalty == "l1" else run_lbfgs
        trace: LbfgsTrace = run(ops, initial_loss(ops.n, ops.base_rate), params.memory, params.max_iter, params.tol)
    finally:  # what was computed ahead for a next iteration that will not come
        for keys in (ops.chooser, *(p.holder for p in partners)):
            if keys is not None:
                keys.drop_ahead()
    for part, at in zip(partners, ops.at, strict=True):
        part.link.send(Shares(u128.from_ints(ops.w_share[at])), D.COEFFICIENTS, (part.enc.size,))
    woe = None if ops.enc.values is None else list(ops.enc.values[1:])
    return BankModel(ops.enc.expand(ops.w), trace.iterations, trace.losses, [p.n_bins for p in partners], ops.w.copy(),
                     n_features, woe)
