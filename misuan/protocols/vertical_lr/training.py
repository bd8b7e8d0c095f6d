"""Vertical L2 logistic regression by L-BFGS on shared coefficients: the two roles and an in-process run.

The objective is scikit-learn's ``C * sum_i logloss_i + |w|^2 / 2`` divided by ``C`` (the intercept
unpenalised), over the one-hot bins of both parties' features (every bin a column, no reference
bin: the penalty makes the coefficients unique). Each iteration (docs/architecture.md, "Vertical LR:
the optimiser and the construction, decided"):

1. *Scores*: ``z = b0 + X_b w_b + X_p w_p`` as shares mod 2^64: the bank's block in the clear at the
   bank; ``X_p w_p`` from the partner's share at its own bins and a lookup (:mod:`.bin_shares`) of
   the bank's share at the partner's bins.
2. *Probabilities*: ``p = sigmoid(z)`` as shares by the OT table (:mod:`.sigmoid_table`), lifted to
   shares mod 2^128.
3. *Gradient*: the partner's block ``X_p^T (p - y) + lambda w_p`` as shares: the partner's share of
   ``p`` summed over its bins, and the bank's ``p - y`` scattered into them; the bank's block in the
   clear at the bank: the partner's share of ``p`` scattered into the bank's bins (and the
   intercept), the sums' shares sent to the bank.
4. *Direction*: L-BFGS's two-loop recursion with the inner products it needs opened to both parties,
   the initial matrix applied as in :class:`Preconditioner`; the unit step (the log loss is tracked
   by the trapezoid rule from the inner products with the gradients at both ends of the step).

Fixed point: scores 20 fractional bits mod 2^64, probabilities 20 bits, the optimiser's vectors 40
bits mod 2^128 (:mod:`.shared_vectors`).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence

import numpy as np

from misuan.crypto.ot_extension import ExtensionReceiver, ExtensionSender, chunks_of
from misuan.protocols.secureboost.shares import choice_bits
from misuan.protocols.vertical_lr import products, u128
from misuan.protocols.vertical_lr.bin_shares import Chooser, Holder
from misuan.protocols.vertical_lr.shared_vectors import (
    MOD,
    SCALE_BITS,
    Shared,
    decode_int,
    encode_int,
    scale_share,
    truncate_share,
)
from misuan.protocols.vertical_lr.sigmoid_table import SigmoidReceiver, SigmoidSender, TableShape, lift
from misuan.protocols.vertical_lr.sigmoid_table import run_extension as run_table_extension

__all__ = ["BankRole", "FitResult", "PartnerRole", "TrainingParams", "fit_in_process"]

_P_BITS = 20


@dataclasses.dataclass(frozen=True)
class TrainingParams:
    c: float = 1.0  # scikit-learn's C: the inverse of the L2 strength
    max_iter: int = 50
    tol: float = 1e-4  # relative change of the log loss between iterations
    memory: int = 3  # L-BFGS pairs kept
    table: TableShape = TableShape()

    @property
    def lam(self) -> float:
        return 1.0 / self.c


def _one_hot_counts(bins: np.ndarray, n_bins: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """The co-occurrence matrix ``X^T X`` of the one-hot columns and the offsets of the features."""
    offsets = np.concatenate([[0], np.cumsum(n_bins)]).astype(np.int64)
    cells = offsets[None, :-1] + bins.astype(np.int64)
    width = int(offsets[-1])
    x = np.zeros((bins.shape[0], width), dtype=np.float32)
    x[np.arange(bins.shape[0])[:, None], cells] = 1.0
    return (x.T @ x).astype(np.float64), offsets


@dataclasses.dataclass
class _Block:
    """A party's own block of the initial matrix: ``D = s0 X^T X + Lambda`` and the Woodbury pieces."""

    inverse: np.ndarray  # D^{-1}
    counts: np.ndarray  # X^T 1 (with the intercept: n first)
    u: np.ndarray  # D^{-1} counts
    kappa: float  # counts^T D^{-1} counts


def _block(xtx: np.ndarray, s0: float, penalties: np.ndarray) -> _Block:
    d = s0 * xtx + np.diag(penalties)
    inv = np.linalg.inv(d)
    counts = np.diag(xtx).copy()
    u = inv @ counts
    return _Block(inv, counts, u, float(counts @ u))


class BankRole:
    """The label party: its bins, labels, its coefficients in the clear, its share of the partner's."""

    def __init__(self, bins: np.ndarray, n_bins: Sequence[int], y: np.ndarray, params: TrainingParams) -> None:
        self.bins, self.n_bins, self.y, self.params = bins, list(n_bins), y.astype(np.float64), params
        self.n = len(y)
        self.p0 = float(np.clip(self.y.mean(), 1e-6, 1 - 1e-6))
        # the intercept is a feature with one bin that every row falls in
        self.ext_bins = np.hstack([np.zeros((self.n, 1), dtype=bins.dtype), bins])
        self.ext_n_bins = [1, *self.n_bins]
        xtx, self.offsets = _one_hot_counts(self.ext_bins, self.ext_n_bins)
        penalties = np.full(xtx.shape[0], params.lam)
        penalties[0] = 0.0
        self.penalties = penalties
        shared_rate = self.public_base_rate()  # both blocks of the initial matrix use the same s0
        self.s0 = shared_rate * (1 - shared_rate)
        self.block = _block(xtx, self.s0, penalties)
        self.cells = self.offsets[None, :-1] + self.ext_bins.astype(np.int64)
        self.w = np.zeros(xtx.shape[0])
        self.w[0] = math.log(self.p0 / (1 - self.p0))
        self.holder: Holder | None = None  # partner's bins: lookups, scatters
        self.chooser: Chooser | None = None  # own bins: the partner's scatters
        self.w_share: list[int] = []

    def public_base_rate(self) -> float:
        """What the partner needs for its block of the initial matrix (disclosed, rounded)."""
        return min(max(round(self.p0, 2), 0.01), 0.99)

    def initial_loss(self) -> float:
        return float(-(self.y * math.log(self.p0) + (1 - self.y) * math.log(1 - self.p0)).sum())

    def scores(self) -> np.ndarray:
        """The bank's part of the score, in the clear, per row."""
        return self.w[self.cells].sum(axis=1)


class PartnerRole:
    """The feature party: its bins and its share of its own coefficients."""

    def __init__(self, bins: np.ndarray, n_bins: Sequence[int], params: TrainingParams) -> None:
        self.bins, self.n_bins, self.params = bins, list(n_bins), params
        self.n = bins.shape[0]
        xtx, self.offsets = _one_hot_counts(bins, self.n_bins)
        self.xtx = xtx
        self.cells = self.offsets[None, :-1] + bins.astype(np.int64)
        self.width = int(self.offsets[-1])
        self.block: _Block | None = None
        self.chooser: Chooser | None = None
        self.holder: Holder | None = None
        self.w_share: list[int] = [0] * self.width

    def set_base_rate(self, p0: float) -> None:
        s0 = p0 * (1 - p0)
        self.block = _block(self.xtx, s0, np.full(self.width, self.params.lam))


def _extend(choices: np.ndarray, session: bytes) -> tuple[np.ndarray, np.ndarray]:
    """An IKNP extension in one process: (sender's keys, receiver's keys)."""
    r, s = ExtensionReceiver(choices, session), ExtensionSender(len(choices), session)
    r.accept_base_points(s.base_points(r.base_message))
    for a, b in chunks_of(len(choices)):
        s.accept_columns(a, r.columns(a, b))
    return s.keys, r.keys


def _product(matrix: np.ndarray, vector: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shares (matrix side, vector side) of ``matrix @ vector`` mod 2^128 (Gilboa, in one process)."""
    session = os.urandom(16)
    ms = products.MatrixSide(matrix, matrix.shape[1], session)
    vs = products.VectorSide(vector, matrix.shape[0], session)
    products.run_extension(ms, vs)
    corrections, mine = ms.corrections()
    return mine, vs.share(corrections)


@dataclasses.dataclass
class FitResult:
    bank_coef: np.ndarray  # intercept first, then the bank's bins
    partner_coef: np.ndarray  # the partner's bins (what the partner learns at the end)
    iterations: int
    losses: list[float]
    opened: int  # scalars opened to both parties


class _Run:
    """The in-process conversation of one training (each method is one step of the protocol)."""

    def __init__(self, bank: BankRole, partner: PartnerRole) -> None:
        self.bank, self.partner = bank, partner
        self.use = 0
        self.opened = 0
        partner.set_base_rate(bank.public_base_rate())
        session_p, session_b = os.urandom(16), os.urandom(16)
        held, chosen = _extend(choice_bits(partner.bins, partner.n_bins), session_p)
        bank.holder = Holder(held, partner.n, partner.n_bins, session_p)
        partner.chooser = Chooser(chosen, partner.bins, partner.n_bins, session_p)
        held, chosen = _extend(choice_bits(bank.ext_bins, bank.ext_n_bins), session_b)
        partner.holder = Holder(held, bank.n, bank.ext_n_bins, session_b)
        bank.chooser = Chooser(chosen, bank.ext_bins, bank.ext_n_bins, session_b)
        bank.w_share = [0] * partner.width
        self.kappa_p = partner.block.kappa if partner.block else 0.0  # opened (label-free)

    def _next_use(self) -> int:
        self.use += 1
        return self.use

    def probabilities(self) -> tuple[np.ndarray, np.ndarray]:
        """Shares mod 2^128 ((n, 2) words) of ``p`` at the current coefficients: (bank's, partner's)."""
        b, p = self.bank, self.partner
        shape = b.params.table
        shift = SCALE_BITS - shape.score_bits
        a20 = np.array([truncate_share(v, shift, True) % (1 << 64) for v in b.w_share], dtype=np.uint64)
        c20 = np.array([truncate_share(v, shift, False) % (1 << 64) for v in p.w_share], dtype=np.uint64)
        use = self._next_use()
        vectors = [a20[p.offsets[f]: p.offsets[f + 1]] for f in range(len(p.n_bins))]
        assert b.holder is not None and p.chooser is not None
        corrections, held = b.holder.lookup(use, vectors)
        z_partner = c20[p.cells].sum(axis=1, dtype=np.uint64) + p.chooser.lookup(use, corrections)
        z_bank = np.rint(b.scores() * 2.0**shape.score_bits).astype(np.int64).view(np.uint64) + held
        session = os.urandom(16)
        sender, receiver = SigmoidSender(z_bank, shape, session), SigmoidReceiver(z_partner, shape, session)
        run_table_extension(sender, receiver)
        entries, mine = sender.entries()
        return lift(mine, True), lift(receiver.receive(entries), False)

    def gradient(self, p_bank: np.ndarray, p_partner: np.ndarray) -> tuple[Shared, Shared]:
        """The gradient as each side's :class:`Shared` view (bank's block in the clear at the bank)."""
        b, p = self.bank, self.partner
        assert b.holder is not None and p.chooser is not None and p.holder is not None and b.chooser is not None
        # the partner's block: X_p^T (p - y), shares mod 2^128 at 20 bits
        y_words = u128.widen((b.y * 2**_P_BITS).astype(np.int64).view(np.uint64), signed=True)
        use = self._next_use()
        corrections, held = b.holder.scatter(use, u128.sub(p_bank, y_words))
        partner_sum = u128.add(p.chooser.scatter(use, corrections), u128.bin_sums(p.cells, p_partner, p.width))
        g_bank_share = [(v << SCALE_BITS - _P_BITS) % MOD for v in u128.to_ints(held)]
        g_partner_share = [(v << SCALE_BITS - _P_BITS) % MOD for v in u128.to_ints(partner_sum)]
        lam = b.params.lam
        g_bank_share = [(g + r) % MOD for g, r in zip(g_bank_share, scale_share(b.w_share, lam, True), strict=True)]
        g_partner_share = [(g + r) % MOD for g, r in zip(g_partner_share, scale_share(p.w_share, lam, False), strict=True)]
        # the bank's block: A_b^T p opened to the bank
        use = self._next_use()
        corrections, held_p = p.holder.scatter(use, p_partner)
        total = u128.add(u128.add(held_p, b.chooser.scatter(use, corrections)), u128.bin_sums(b.cells, p_bank, len(b.w)))
        atp = np.array([decode_int(v, _P_BITS) for v in u128.to_ints(total)])
        aty = np.bincount(b.cells.reshape(-1), weights=np.repeat(b.y, b.cells.shape[1]), minlength=len(b.w))
        g_bank_block = atp - aty + b.penalties * b.w
        return Shared(g_bank_block, g_bank_share), Shared(None, g_partner_share)

    def inner(self, u: tuple[Shared, Shared], v: tuple[Shared, Shared]) -> float:
        """``<u, v>`` over both blocks, opened to both parties."""
        (ub, up), (vb, vp) = u, v
        assert ub.bank is not None and vb.bank is not None
        local = sum(x * y for x, y in zip(ub.share, vb.share, strict=True)) + sum(
            x * y for x, y in zip(up.share, vp.share, strict=True))
        m1, v1 = _product(ub.words()[None, :, :], vp.words())  # <u_bank, v_partner>
        m2, v2 = _product(up.words()[None, :, :], vb.words())  # <u_partner, v_bank>
        cross = sum(u128.to_ints(m1) + u128.to_ints(v1) + u128.to_ints(m2) + u128.to_ints(v2))
        self.opened += 1
        return float(ub.bank @ vb.bank) + decode_int((local + cross) % MOD, 2 * SCALE_BITS)

    def precondition(self, q: tuple[Shared, Shared]) -> tuple[Shared, Shared]:
        """``H0^{-1} q``: each party's own block, plus the rank-2 cross block of the independence
        approximation by Woodbury (two scalars opened)."""
        b, p = self.bank, self.partner
        qb, qp = q
        assert qb.bank is not None and p.block is not None
        t_bank_block = b.block.inverse @ qb.bank
        inv = [encode_int(x) for x in p.block.inverse.reshape(-1)]
        matrix = u128.from_ints(inv).reshape(p.width, p.width, 2)
        held_p, held_b = _product(matrix, qb.words())  # D_p^{-1} (bank's share), at 80 bits
        own = [sum(m * x for m, x in zip(row, qp.share, strict=True)) for row in np.array(inv, dtype=object).reshape(p.width, p.width)]
        t_partner = [truncate_share(x + y, SCALE_BITS, False) for x, y in zip(own, u128.to_ints(held_p), strict=True)]
        t_bank = [truncate_share(x, SCALE_BITS, True) for x in u128.to_ints(held_b)]
        # pi_p = cp^T t_p, opened
        cp = p.block.counts
        pi_share_p = sum(int(round(c)) * v for c, v in zip(cp, t_partner, strict=True))
        pi_share_b = sum(int(round(c)) * v for c, v in zip(cp, t_bank, strict=True))
        pi_p = decode_int((pi_share_p + pi_share_b) % MOD)
        pi_b = float(b.block.counts @ t_bank_block)
        self.opened += 1
        s = b.s0 / b.n
        cmat = np.array([[1.0, s * self.kappa_p], [s * b.block.kappa, 1.0]])
        gamma = np.linalg.solve(cmat, s * np.array([pi_p, pi_b]))
        r_bank_block = t_bank_block - b.block.u * gamma[0]
        correction = [encode_int(x * gamma[1]) for x in p.block.u]  # u_p is the partner's own
        t_partner = [(t - c) % MOD for t, c in zip(t_partner, correction, strict=True)]
        return Shared(r_bank_block, t_bank), Shared(None, t_partner)

    def step(self, d: tuple[Shared, Shared]) -> None:
        db, dp = d
        assert db.bank is not None
        self.bank.w = self.bank.w + db.bank
        self.bank.w_share = [(w + x) % MOD for w, x in zip(self.bank.w_share, db.share, strict=True)]
        self.partner.w_share = [(w + x) % MOD for w, x in zip(self.partner.w_share, dp.share, strict=True)]


def _combine(a: tuple[Shared, Shared], b: tuple[Shared, Shared], c: float) -> tuple[Shared, Shared]:
    """``a + c b`` (``c`` public)."""
    return a[0].plus(b[0].times(c, True)), a[1].plus(b[1].times(c, False))


def fit_in_process(bank: BankRole, partner: PartnerRole) -> FitResult:
    """Train with both roles in one process (tests, and the reference for the networked run)."""
    run = _Run(bank, partner)
    params = bank.params
    pairs: list[tuple[tuple[Shared, Shared], tuple[Shared, Shared], float]] = []  # (s, y, rho)
    loss = bank.initial_loss()
    losses = [loss]
    g = run.gradient(*run.probabilities())
    iterations = 0
    for _ in range(params.max_iter):
        iterations += 1
        q = g
        alphas = []
        for s_k, y_k, rho in reversed(pairs):
            alpha = rho * run.inner(s_k, q)
            alphas.append(alpha)
            q = _combine(q, y_k, -alpha)
        r = run.precondition(q)
        for (s_k, y_k, rho), alpha in zip(pairs, reversed(alphas), strict=True):
            beta = rho * run.inner(y_k, r)
            r = _combine(r, s_k, alpha - beta)
        s = (r[0].times(-1.0, True), r[1].times(-1.0, False))
        slope_before = run.inner(s, g)
        run.step(s)
        g_new = run.gradient(*run.probabilities())
        slope_after = run.inner(s, g_new)
        y_new = (g_new[0].minus(g[0]), g_new[1].minus(g[1]))
        sy = slope_after - slope_before
        new_loss = loss + 0.5 * (slope_before + slope_after)
        losses.append(new_loss)
        converged = abs(loss - new_loss) / max(abs(new_loss), 1e-12) < params.tol
        loss, g = new_loss, g_new
        if sy > 0:
            pairs = [*pairs, (s, y_new, 1.0 / sy)][-params.memory:]
        if converged:
            break
    partner_coef = np.array([decode_int((a + c) % MOD) for a, c in zip(bank.w_share, partner.w_share, strict=True)])
    return FitResult(bank.w.copy(), partner_coef, iterations, losses, run.opened)
