"""How a party's bins enter the model: one coefficient per bin (dummy encoding, the default) or one
per feature on its bins' WOE values (WOE encoding, opt-in).

WOE encoding is the one-hot model with its per-bin coefficients tied: ``beta_{f,b} = woe_{f,b} w_f``,
a linear map ``beta = M w`` (``M``: bins x features, one WOE value per row) that both parties know
for the feature party's bins (the label party needs it for its share of ``beta``). So the protocol
runs unchanged on the bins (the lookups of ``beta``, the scatters of per-bin sums) and maps at the
two ends: coefficient shares out through ``M`` (:meth:`Encoding.expand_share`), per-bin gradient
shares back through ``M^T`` (:meth:`Encoding.collapse_share`), each a public fixed-point multiplier
and a local truncation; the optimiser works on ``w``. The WOE values come from the labels, which
is why the encoding is opt-in: the feature party learns its bins' event counts (docs/privacy.md).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import numpy as np

from misuan.protocols.vertical_lr.shared_vectors import COEFF_BITS, MOD, Side, truncate_share
from misuan.protocols.woe.table import woe_iv_ks

__all__ = ["SMOOTHING", "Encoding", "per_feature", "woe_values"]

SMOOTHING = 0.5  # added to every bin's counts where a bin has no events or no non-events (the WOE step's rule)


def per_feature(values: np.ndarray, n_bins: Sequence[int]) -> list[np.ndarray]:
    """A per-bin vector (features' bins concatenated) cut into one array per feature."""
    return np.split(np.asarray(values), np.cumsum([int(b) for b in n_bins])[:-1])


def woe_values(rows: np.ndarray, events: np.ndarray, n_bins: Sequence[int]) -> list[np.ndarray]:
    """Each feature's bins' WOE (``ln(share of non-events / share of events)``, the WOE step's
    convention and smoothing) from the per-bin row and event counts, concatenated over features.

    A bin without rows (the missing-value bin of a complete column) gets WOE 0, the neutral value,
    and does not count as a bin without events: it would otherwise smooth every other bin's counts
    and bend the WOE of bins whose default rates are nearly equal out of their order."""
    out = []
    for r, e in zip(per_feature(rows, n_bins), per_feature(events, n_bins), strict=True):
        woe = np.zeros(len(r))
        seen = r > 0
        woe[seen] = woe_iv_ks(r[seen], e[seen], SMOOTHING)[0]
        out.append(woe)
    return out


@dataclasses.dataclass(frozen=True)
class Encoding:
    """A party's map from its coefficients to its per-bin coefficients: ``None`` values for dummy
    encoding (the identity), else one WOE vector per feature (an intercept is the vector ``[1]``)."""

    n_bins: tuple[int, ...]
    values: tuple[np.ndarray, ...] | None = None

    @classmethod
    def dummy(cls, n_bins: Sequence[int]) -> Encoding:
        return cls(tuple(int(b) for b in n_bins))

    @classmethod
    def woe(cls, n_bins: Sequence[int], values: Sequence[np.ndarray]) -> Encoding:
        """WOE ``values`` per feature, snapped to the fixed-point grid of the shares' multipliers: both
        parties then hold the very same map (the bank sends the partner its grid integers)."""
        vals = tuple(np.round(np.asarray(v, dtype=np.float64) * 2.0**COEFF_BITS) / 2.0**COEFF_BITS for v in values)
        if len(vals) != len(n_bins) or any(v.shape != (b,) or not np.all(np.isfinite(v)) for v, b in zip(vals, n_bins, strict=True)):
            raise ValueError("a WOE encoding has one finite value per bin of each feature")
        return cls(tuple(int(b) for b in n_bins), vals)

    @property
    def bins(self) -> int:
        return int(sum(self.n_bins))

    @property
    def size(self) -> int:
        """The number of coefficients: one per bin, or one per feature."""
        return self.bins if self.values is None else len(self.n_bins)

    @functools.cached_property
    def matrix(self) -> np.ndarray:
        """``M`` (bins x coefficients), built once: the bank's own applies it every iteration."""
        if self.values is None:
            return np.eye(self.bins)
        m = np.zeros((self.bins, len(self.n_bins)))
        at = 0
        for f, v in enumerate(self.values):
            m[at: at + len(v), f] = v
            at += len(v)
        return m

    def expand(self, w: np.ndarray) -> np.ndarray:
        """Per-bin coefficients ``M w``."""
        return np.asarray(w, dtype=np.float64) if self.values is None else self.matrix @ w

    def collapse(self, g: np.ndarray) -> np.ndarray:
        """``M^T g`` of a per-bin vector."""
        return np.asarray(g, dtype=np.float64) if self.values is None else self.matrix.T @ g

    @functools.cached_property
    def multipliers(self) -> np.ndarray:
        """The WOE values on the grid as integers (``woe * 2^COEFF_BITS``), concatenated over features."""
        assert self.values is not None
        return np.concatenate([np.rint(v * 2.0**COEFF_BITS) for v in self.values]).astype(np.int64)

    @classmethod
    def from_multipliers(cls, n_bins: Sequence[int], multipliers: np.ndarray) -> Encoding:
        return cls.woe(n_bins, [m / 2.0**COEFF_BITS for m in per_feature(np.asarray(multipliers, np.float64), n_bins)])

    @functools.cached_property
    def _multiplier_rows(self) -> list[list[int]]:
        """:attr:`multipliers` per feature as Python integers (the shares are Python integers mod 2^128)."""
        return [m.tolist() for m in per_feature(self.multipliers, self.n_bins)]

    def expand_share(self, share: list[int], first: Side) -> list[int]:
        """A share of ``M w`` from a share of ``w`` (fixed point: ``M`` at COEFF_BITS, then truncated)."""
        if self.values is None:
            return share
        return [truncate_share(k * s, COEFF_BITS, first) for ks, s in zip(self._multiplier_rows, share, strict=True) for k in ks]

    def collapse_share(self, share: list[int], first: Side) -> list[int]:
        """A share of ``M^T g`` from a share of the per-bin ``g``."""
        if self.values is None:
            return share
        out, at = [], 0
        for ks in self._multiplier_rows:
            out.append(truncate_share(sum(k * s for k, s in zip(ks, share[at: at + len(ks)], strict=True)) % MOD,
                                      COEFF_BITS, first))
            at += len(ks)
        return out
