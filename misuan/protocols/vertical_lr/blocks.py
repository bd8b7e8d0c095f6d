"""The initial matrix of L-BFGS: each party's own label-free block and the cross blocks of the
independence approximation, applied by Woodbury (docs/architecture.md, "Vertical LR").

``H0 = s0 A^T A + Lambda`` with the cross block between two parties ``a != b`` replaced by
``s0 counts_a counts_b^T / n`` (what it would be if their bins were independent):
``H0 = D + E C E^T``, ``D`` block-diagonal (each party's own ``s0 X^T X + Lambda``), ``E``'s column
``a`` the block-embedded ``counts_a``, ``C = (s0 / n) (J - I)`` over the parties. So
``H0^{-1} q = D^{-1} q - [u_a gamma_a]_a`` with ``u_a = D_a^{-1} counts_a``,
``gamma = (I + C K)^{-1} C pi``, ``K = diag(kappa_a)``, ``kappa_a = counts_a^T D_a^{-1} counts_a`` and
``pi_a = counts_a^T D_a^{-1} q_a`` (Woodbury with ``E^T D^{-1} E = K``: the blocks are disjoint).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

__all__ = ["PRODUCT_BITS", "Q_BITS", "SHORT_BITS", "OwnBlock", "gamma", "one_hot_cells", "own_block"]

# The partner's block of a vector enters the preconditioner's product at Q_BITS fractional bits; the
# bank's share is first re-shared to SHORT_BITS (the vector's entries stay below 2^20, and 40 bits
# of statistical margin), so the product needs SHORT_BITS OTs an entry instead of 128.
Q_BITS = 24
SHORT_BITS = 20 + Q_BITS + 40
PRODUCT_BITS = 40 + Q_BITS  # D^{-1} at 40 fractional bits times q at Q_BITS


def one_hot_cells(bins: np.ndarray, n_bins: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Each row's one-hot column of each feature (``(rows, features)``) and the features' offsets."""
    offsets = np.concatenate([[0], np.cumsum(n_bins)]).astype(np.int64)
    return offsets[None, :-1] + bins.astype(np.int64), offsets


@dataclasses.dataclass
class OwnBlock:
    inverse: np.ndarray  # D^{-1}
    counts: np.ndarray  # X^T 1: rows per column
    u: np.ndarray  # D^{-1} counts
    kappa: float  # counts^T D^{-1} counts


def own_block(cells: np.ndarray, width: int, s0: float, penalties: np.ndarray, encoding: np.ndarray | None = None) -> OwnBlock:
    """A party's block from its one-hot cells: ``D = s0 X^T X + diag(penalties)``; with an encoding
    ``M`` (bins x coefficients, :mod:`.encoding`) the block of the encoded design ``X M``."""
    x = np.zeros((cells.shape[0], width), dtype=np.float32)
    x[np.arange(cells.shape[0])[:, None], cells] = 1.0
    xtx = (x.T @ x).astype(np.float64)
    counts = np.diag(xtx).copy()
    if encoding is not None:
        xtx, counts = encoding.T @ xtx @ encoding, encoding.T @ counts
    inv = np.linalg.inv(s0 * xtx + np.diag(penalties))
    u = inv @ counts
    return OwnBlock(inv, counts, u, float(counts @ u))


def gamma(s0: float, n: int, kappas: Sequence[float], pis: Sequence[float]) -> list[float]:
    """Woodbury's coefficients, one per block (the bank's first), from the blocks' kappas and
    projections ``pi``: ``gamma = (I + C K)^{-1} C pi`` with ``C = (s0 / n) (J - I)``, ``K = diag(kappa)``."""
    k = len(kappas)
    c = (s0 / n) * (np.ones((k, k)) - np.eye(k))
    g = np.linalg.solve(np.eye(k) + c * np.asarray(kappas, dtype=np.float64)[None, :], c @ np.asarray(pis, dtype=np.float64))
    return [float(x) for x in g]
