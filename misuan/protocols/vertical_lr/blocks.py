"""The initial matrix of L-BFGS: each party's own label-free block and the cross block of the
independence approximation, applied by Woodbury (docs/architecture.md, "Vertical LR").

``H0 = s0 A^T A + Lambda`` with the cross block between the parties replaced by
``s0 counts_bank counts_partner^T / n`` (what it would be if the parties' bins were independent):
``H0 = D + (s0 / n) (e_b e_p^T + e_p e_b^T)``, ``D`` block-diagonal (each party's own ``s0 X^T X +
Lambda``), ``e_b = [counts_bank; 0]``, ``e_p = [0; counts_partner]``. So
``H0^{-1} q = D^{-1} q - [u_b gamma_1; u_p gamma_2]`` with ``u = D^{-1} counts`` per block and
``gamma = C^{-1} (s0 / n) [counts_p^T D_p^{-1} q_p, counts_b^T D_b^{-1} q_b]``,
``C = [[1, (s0/n) kappa_p], [(s0/n) kappa_b, 1]]``, ``kappa = counts^T D^{-1} counts`` per block.
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


def gamma(s0: float, n: int, kappa_b: float, kappa_p: float, pi_b: float, pi_p: float) -> tuple[float, float]:
    """Woodbury's two coefficients from the blocks' kappas and the projections ``pi``."""
    s = s0 / n
    c = np.array([[1.0, s * kappa_p], [s * kappa_b, 1.0]])
    g = np.linalg.solve(c, s * np.array([pi_p, pi_b]))
    return float(g[0]), float(g[1])
