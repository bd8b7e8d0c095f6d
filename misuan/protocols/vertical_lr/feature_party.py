"""A feature party (a partner) of vertical LR: its bins and its share of its own coefficients."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import numpy as np

from misuan.errors import ConfigError, DataError, MalformedMessageError
from misuan.net.channel import Channel
from misuan.protocols.vertical_lr import blocks, u128
from misuan.protocols.vertical_lr import disclosures as D
from misuan.protocols.vertical_lr.bin_shares import Chooser, Holder
from misuan.protocols.vertical_lr.encoding import Encoding, per_feature, woe_values
from misuan.protocols.vertical_lr.exchange import Link, ZeroSumMasks
from misuan.protocols.vertical_lr.label_party import P_BITS, initial_loss
from misuan.protocols.vertical_lr.lbfgs import orthant_point, pseudo_gradient, run_lbfgs, run_owlqn
from misuan.protocols.vertical_lr.messages import (
    STEP,
    BinRows,
    Gamma,
    Kappa,
    MaskSeed,
    Schema,
    Setup,
    Shares,
    WoeTable,
)
from misuan.protocols.vertical_lr.params import TrainingParams
from misuan.protocols.vertical_lr.shared_vectors import (
    MOD,
    SCALE_BITS,
    WHOLE,
    Shared,
    Side,
    decode_int,
    encode_int,
    scale_share,
    score_words,
    truncate_share,
)
from misuan.protocols.vertical_lr.sigmoid_table import SigmoidReceiver

__all__ = ["PartnerModel", "train_feature_party"]


@dataclasses.dataclass
class PartnerModel:
    coef: np.ndarray  # one per bin of each of the partner's features
    iterations: int
    bank_n_bins: list[int]  # the bank's bins per feature (from its setup; the intercept not counted)
    encoded_coef: np.ndarray  # what the optimiser fitted: ``coef`` (dummy encoding) or one per feature
    n_features: int  # every party's features together (from the bank's setup): the scorecard spreads its offset over them
    woe: list[np.ndarray] | None = None  # WOE encoding: each of its features' bins' WOE (learnt from the bank's labels)
    events: np.ndarray | None = None  # WOE encoding: the event count of each of its bins (concatenated)


class _PartnerOps:

    def __init__(self, link: Link, bins: np.ndarray, n_bins: Sequence[int], params: TrainingParams, setup: Setup,
                 others: list[Link]) -> None:
        self.link, self.params = link, params
        # with its own block in the clear (L1) its "share" of the optimiser's vectors is the whole value and
        # the bank's zero: it truncates as a signed number (the shares' rules assume shares that wrap)
        self.first: Side = WHOLE if params.own_blocks else False
        # the lead (the first feature party) holds the sigmoid's share for all: it takes the others'
        # shares of the scores and hands each its share of p; the others' links hold only the lead's
        self.others = others
        self.lead = not others or setup.feature_parties[0] == link.chan.party
        self.n = bins.shape[0]
        self.n_bins = list(n_bins)
        self.bins = bins.astype(np.int64)
        self.cells, offsets = blocks.one_hot_cells(self.bins, self.n_bins)
        self.width = int(offsets[-1])
        self.s0 = setup.base_rate * (1 - setup.base_rate)
        self.bank_bins = [int(b) for b in setup.n_bins]
        self.bank_width = int(sum(self.bank_bins))
        self.bank_features = len(self.bank_bins)
        self.chooser: Chooser | None = None
        self.holder: Holder | None = None
        self.events: np.ndarray | None = None
        self.masks = ZeroSumMasks([], 1)
        self.use_encoding(Encoding.dummy(self.n_bins))

    def share_seeds(self) -> None:
        """Two or more feature parties: the lead sends each other one a seed of zero-sum masks."""
        if self.lead:
            seeds = [os.urandom(16) for _ in self.others]
            for other, seed in zip(self.others, seeds, strict=True):
                other.send(MaskSeed(np.frombuffer(seed, np.uint8).copy()), D.MASK_SEED, (16,))
            self.masks = ZeroSumMasks(seeds, -1)
        elif self.others:
            msg = self.others[0].recv(MaskSeed, D.MASK_SEED, (16,))
            assert isinstance(msg, MaskSeed)
            if not isinstance(msg.seed, np.ndarray) or msg.seed.dtype != np.uint8 or msg.seed.shape != (16,):
                raise MalformedMessageError(f"{self.others[0].peer} sent a mask seed that is not 16 bytes")
            self.masks = ZeroSumMasks([msg.seed.tobytes()], 1)

    def use_encoding(self, enc: Encoding) -> None:
        """Its block of the initial matrix, of the encoded design, and the coefficients' shares."""
        self.enc = enc
        self.w_share = [0] * enc.size
        self.block = blocks.own_block(self.cells, self.width, self.s0, np.full(enc.size, self.params.damping),
                                      None if enc.values is None else enc.matrix)
        # [D_p^{-1}; u_p^T] in fixed point: the matrix side of every preconditioning product
        rows = [*(list(r) for r in self.block.inverse), list(self.block.u)]
        self.matrix_ints = [[encode_int(x) for x in r] for r in rows]
        self.matrix_words = u128.from_ints([x for r in self.matrix_ints for x in r]).reshape(enc.size + 1, enc.size, 2)

    def connect(self) -> None:
        self.chooser = self.link.bins_as_chooser(self.bins, self.n_bins)
        if self.lead:  # the bank's own gradient: the lead's share of p scattered into the bank's bins
            self.holder = self.link.bins_as_holder(self.n, self.bank_bins)

    def share_woe(self) -> None:
        """WOE encoding (the bank's :meth:`share_woe`): its share of the labels' sums per bin, opened,
        and its rows per bin sent; both compute its bins' WOE."""
        assert self.chooser is not None
        corrections = self.link.recv_rows((self.n, len(self.n_bins), 2), D.WOE_LABELS)
        mine = self.chooser.scatter(self.link.next_use(), corrections)
        theirs = self.link.exchange_shares(mine, False, D.WOE_EVENTS)
        events = np.array([decode_int(v, 0) for v in u128.to_ints(u128.add(mine, theirs))])
        rows = np.bincount(self.cells.reshape(-1), minlength=self.width).astype(np.int64)
        self.link.send(BinRows(rows), D.WOE_ROWS, (self.width,))
        totals = {int(e.sum()) for e in per_feature(events, self.n_bins)}
        if np.any(events < 0) or np.any(events > rows) or len(totals) != 1:
            raise MalformedMessageError("the event counts of its bins are impossible (the bank's share is corrupt)")
        own = Encoding.woe(self.n_bins, woe_values(rows, events, self.n_bins))
        # the bank's grid integers, the map both use: its own computation may differ in the last bit
        # (another libm), and the shares need the very same multipliers on both sides
        table = self.link.recv(WoeTable, D.WOE_TABLE, (self.width,))
        assert isinstance(table, WoeTable)
        m = table.multipliers
        if not isinstance(m, np.ndarray) or m.dtype != np.int64 or m.shape != (self.width,) \
                or np.any(np.abs(m - own.multipliers) > 4):
            raise MalformedMessageError("the bank's WOE of this party's bins differ from the ones its counts give")
        self.events = events
        self.use_encoding(Encoding.from_multipliers(self.n_bins, m))

    def probabilities(self) -> np.ndarray:
        """Its share of ``p``: the lead's from the sigmoid on the sum of every feature party's share of
        the scores (the others send theirs, mod 2^32), the others' from the lead."""
        assert self.chooser is not None
        shape = self.params.table
        c = score_words(self.enc.expand_share(self.w_share, self.first), shape.score_bits, self.first)
        use = self.link.next_use()
        self.chooser.prefetch("lookup", use)  # its masks while the bank's corrections are computed and sent
        corrections = self.link.recv_rows((self.n, self.width), D.LOOKUP, np.uint32)
        share = self.chooser.lookup(use, corrections)
        # mod 2^32 is all the sigmoid needs of z (it reads the bits below 2^25)
        z = c[self.cells].sum(axis=1, dtype=np.uint64) + share.astype(np.uint64)
        if not self.lead:
            self.others[0].send_rows(z.astype(np.uint32), D.SCORE_SHARE)
            return self.others[0].recv_rows((self.n, 2), D.P_SHARE)
        for other in self.others:
            z += other.recv_rows((self.n,), D.SCORE_SHARE, np.uint32).astype(np.uint64)
        receiver = SigmoidReceiver(z, shape, self.link.next_session())
        self.link.extend_as_receiver(receiver.extension)
        entries = self.link.recv_rows((self.n, shape.entry_words()), D.TABLE)
        p = receiver.receive(entries)
        for other in self.others:
            other.send_rows(p, D.P_SHARE)
        return p

    def gradient(self) -> Shared:
        assert self.chooser is not None
        p = self.probabilities()
        own_use = self.link.next_use()  # the bank's scatter into its bins: numbered first on both sides
        self.chooser.prefetch("scatter", own_use)  # its pads' part while the bank's corrections come
        if self.lead:  # sent first: the bank takes it in full, computed meanwhile, before it sends its own
            assert self.holder is not None
            corrections, held = self.holder.scatter(self.link.next_use(), p)
            self.link.send_rows(corrections, D.LEAD_SCATTER)
            self.link.send(Shares(held), D.OWN_GRADIENT, (self.bank_width,))
        corrections = self.link.recv_rows((self.n, len(self.n_bins), 2), D.SCATTER)
        sums = u128.add(self.chooser.scatter(own_use, corrections), u128.bin_sums(self.cells, p, self.width))
        self.prefetch_next()
        # M^T at p's scale, before the shift: the truncation's operands stay near 2^74, far inside the ring
        share = [(v << SCALE_BITS - P_BITS) % MOD for v in self.enc.collapse_share(u128.to_ints(sums), False)]
        share = [(g + r) % MOD for g, r in zip(share, scale_share(self.w_share, self.params.lam, self.first), strict=True)]
        if self.params.own_blocks:  # the bank's share of its gradient: it holds its block in the clear
            msg = self.link.recv(Shares, D.OWN_BLOCK_GRADIENT, (self.enc.size,))
            theirs = u128.to_ints(self.link.words_of(msg, (self.enc.size, 2)))
            share = [(a + b) % MOD for a, b in zip(share, theirs, strict=True)]
        return Shared(None, share)

    def prefetch_next(self) -> None:
        """The next gradient's key-only parts (its uses follow this one's in a fixed order), computed
        while the optimiser's products and openings run."""
        assert self.chooser is not None
        u = self.link.uses
        self.chooser.prefetch("lookup", u + 1)
        self.chooser.prefetch("scatter", u + 2)
        if self.holder is not None:
            self.holder.prefetch("scatter", u + 3)

    def inner(self, us: list[Shared], v: Shared) -> list[float]:
        if not us:
            return []
        v1 = self.link.product_vector_side(v.words(), len(us))
        m2 = self.link.product_matrix_side(np.stack([u.words() for u in us]))
        mine = [sum(x * y for x, y in zip(u.share, v.share, strict=True)) + u128.to_ints(v1[k:k + 1])[0]
                + u128.to_ints(m2[k:k + 1])[0] for k, u in enumerate(us)]
        return [decode_int(t, 2 * SCALE_BITS) for t in self.link.open_at_feature_party(mine, self.masks)]

    def precondition(self, q: Shared) -> Shared:
        if self.params.own_blocks:
            return self._precondition_own(q)
        q_low = [truncate_share(v, SCALE_BITS - blocks.Q_BITS, False) for v in q.share]
        delta = self.link.recv(Shares, D.RESHARE, (self.enc.size,))
        words = self.link.words_of(delta, (self.enc.size, 2))
        q_mine = [(a + b) % MOD for a, b in zip(q_low, u128.to_ints(words), strict=True)]
        held = u128.to_ints(self.link.product_matrix_side(self.matrix_words, bits=blocks.SHORT_BITS))
        own = [sum(m * x for m, x in zip(row, q_mine, strict=True)) + h for row, h in zip(self.matrix_ints, held, strict=True)]
        t_share = [truncate_share(x, blocks.PRODUCT_BITS - SCALE_BITS, False) for x in own[:-1]]
        self.link.send(Shares(u128.from_ints([own[-1]])), D.PROJECTION, (1,))
        gamma = self._gamma()
        correction = [encode_int(x * gamma) for x in self.block.u]  # u_p is the partner's own
        return Shared(None, [(t - c) % MOD for t, c in zip(t_share, correction, strict=True)])

    def _precondition_own(self, q: Shared) -> Shared:
        """Its block of ``H0^{-1} q`` when it holds the block: the product is local, the projection sent."""
        qv = np.array([decode_int(v) for v in q.share])
        t = self.block.inverse @ qv
        self.link.send(Shares(u128.from_ints([encode_int(float(self.block.u @ qv), blocks.PRODUCT_BITS)])), D.PROJECTION,
                       (1,))
        return Shared(None, [encode_int(x) for x in t - self.block.u * self._gamma()])

    def _gamma(self) -> float:
        msg = self.link.recv(Gamma, D.GAMMA)
        assert isinstance(msg, Gamma)
        if not isinstance(msg.gamma, float) or not np.isfinite(msg.gamma):
            raise MalformedMessageError("the bank's preconditioner coefficient is not a finite number")
        return msg.gamma

    # --- L1 (OWL-QN): its block in the clear, the bank's share of it zero ------------------------
    def _values(self, v: Shared) -> np.ndarray:
        return np.array([decode_int(x) for x in v.share])

    def pseudo_gradient(self, g: Shared) -> Shared:
        weights = np.full(self.enc.size, self.params.l1)
        return Shared(None, [encode_int(x) for x in pseudo_gradient(self._values(Shared(None, self.w_share)),
                                                                    self._values(g), weights)])

    def constrain(self, d: Shared, pg: Shared) -> Shared:
        dv = self._values(d)
        return Shared(None, [encode_int(x) for x in np.where(dv * self._values(pg) < 0, dv, 0.0)])

    def orthant_step(self, d: Shared, pg: Shared, t: float) -> Shared:
        w = self._values(Shared(None, self.w_share))
        new = orthant_point(w, t * self._values(d), self._values(pg), np.full(self.enc.size, self.params.l1))
        # in integers: a coefficient set to zero lands on exactly zero
        return Shared(None, [((encode_int(x) if x != 0 else 0) - v) % MOD for x, v in zip(new, self.w_share, strict=True)])

    def l1_norm(self) -> float:
        mine = encode_int(self.params.l1 * float(np.abs(self._values(Shared(None, self.w_share))).sum()), 2 * SCALE_BITS)
        return decode_int(self.link.open_at_feature_party([mine], self.masks)[0], 2 * SCALE_BITS)

    def step(self, d: Shared) -> None:
        self.w_share = [(w + x) % MOD for w, x in zip(self.w_share, d.share, strict=True)]


def train_feature_party(chan: Channel, peer: str, bins: np.ndarray, n_bins: Sequence[int], params: TrainingParams,
                        *, feature_parties: Sequence[str] | None = None, step: str = STEP) -> PartnerModel:
    """A feature party's side of a training with the label party ``peer``: ``bins`` (``(rows,
    features)``) of the aligned rows. The bank's setup names every feature party of the training
    (the lead first); with ``feature_parties`` (what this party agreed to: a job's step) it must
    name exactly those, in that order, or the training stops before anything per row is sent."""
    if bins.ndim != 2 or bins.shape[1] != len(n_bins) or not n_bins:
        raise DataError("the partner's bins are (rows, features), at least one feature")
    if bins.size and (bins.min() < 0 or np.any(bins.max(axis=0) >= np.asarray(n_bins))):
        raise DataError("a partner bin index is outside its feature's bins")
    link = Link(chan, peer, step, b"")
    link.send(Schema(bins.shape[0], [int(b) for b in n_bins]), D.SCHEMA, (len(n_bins),))
    setup = link.recv(Setup)
    assert isinstance(setup, Setup)
    chan.disclose(step, D.SCHEMA, peer, chan.party, (len(setup.n_bins) if isinstance(setup.n_bins, list) else 0,))
    chan.disclose(step, D.BASE_RATE, peer, chan.party)
    if setup.n_rows != bins.shape[0]:
        raise DataError(f"the bank has {setup.n_rows} rows, the partner {bins.shape[0]}: both must pass the intersection")
    if list(setup.params) != params.as_list():
        raise ConfigError(f"the bank trains with parameters {list(setup.params)}, the partner with {params.as_list()}")
    parties = setup.feature_parties
    if not (0.01 <= setup.base_rate <= 0.99) \
            or not isinstance(setup.session, np.ndarray) or setup.session.dtype != np.uint8 or setup.session.shape != (16,) \
            or not setup.n_bins or setup.n_bins[0] != 1 or any(not (1 <= int(b) <= 256) for b in setup.n_bins) \
            or not isinstance(parties, list) or parties.count(chan.party) != 1 or peer in parties \
            or len(set(parties)) != len(parties) or not all(isinstance(x, str) for x in parties) \
            or not isinstance(setup.n_features, int) \
            or not (len(n_bins) + len(setup.n_bins) - 1 + len(parties) - 1 <= setup.n_features <= 1_000_000):
        raise MalformedMessageError("the bank's setup is malformed")
    if feature_parties is not None and list(parties) != list(feature_parties):
        raise ConfigError(f"the bank's setup names the feature parties {parties} (the lead first); this party agreed "
                          f"to train with {list(feature_parties)}")
    link.session = setup.session.tobytes()
    lead = parties[0]
    others = [Link(chan, x, step, b"") for x in parties[1:]] if chan.party == lead else \
        [Link(chan, lead, step, b"")] if len(parties) > 1 else []
    ops = _PartnerOps(link, bins, n_bins, params, setup, others)
    ops.share_seeds()
    ops.connect()
    if params.encoding == "woe":
        ops.share_woe()
    link.send(Kappa(ops.block.kappa), D.KAPPA)
    try:
        run = run_owlqn if params.penalty == "l1" else run_lbfgs
        trace = run(ops, initial_loss(ops.n, setup.base_rate), params.memory, params.max_iter, params.tol)
    finally:  # what was computed ahead for a next iteration that will not come
        for keys in (ops.chooser, ops.holder):
            if keys is not None:
                keys.drop_ahead()
    k = ops.enc.size
    final = link.recv(Shares, D.COEFFICIENTS, (k,))
    words = link.words_of(final, (k, 2))
    coef = np.array([decode_int(a + b) for a, b in zip(u128.to_ints(words), ops.w_share, strict=True)])
    woe = None if ops.enc.values is None else list(ops.enc.values)
    return PartnerModel(ops.enc.expand(coef), trace.iterations, list(ops.bank_bins[1:]), coef, setup.n_features, woe,
                        ops.events)
