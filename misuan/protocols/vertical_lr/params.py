"""Training parameters of vertical LR (both parties must hold the same; the feature party checks)."""

from __future__ import annotations

import dataclasses
from typing import Literal

from misuan.errors import ConfigError
from misuan.params import check_params, param
from misuan.protocols.vertical_lr.sigmoid_table import TableShape

__all__ = ["TrainingParams"]


@dataclasses.dataclass(frozen=True)
class TrainingParams:
    """The optimiser's parameters; the sigmoid's segments (:attr:`table`) are fixed by the protocol."""

    c: float = param(1.0, "inverse regularisation strength, as scikit-learn's C (the intercept is not penalised)", gt=0,
                     le=1e6)
    max_iter: int = param(50, "L-BFGS iterations at most", ge=1, le=1000)
    tol: float = param(1e-4, "stop when the log loss changes by less than this, relatively, in an iteration", ge=0, lt=1)
    memory: int = param(3, "L-BFGS pairs kept", ge=1, le=20)
    encoding: Literal["dummy", "woe"] = param(
        "dummy", "dummy: a coefficient per bin, no WOE told to anyone; woe: a coefficient per feature on its bins' WOE "
        "(both parties learn the event count of every partner bin: a label leak to the partner, opt-in and recorded)",
    )
    penalty: Literal["l2", "l1"] = param(
        "l2", "l2, or l1 (with encoding woe only: feature selection by OWL-QN; each feature party then holds its own "
        "coefficients and gradient in the clear during training, a further label leak, opt-in and recorded)",
    )

    def __post_init__(self) -> None:
        check_params(self, "vertical_lr")
        if self.penalty == "l1" and self.encoding != "woe":
            # on one-hot bins with an intercept the L1 optimum is not unique (a feature's bins and the
            # intercept trade) and OWL-QN crawls: measured, docs/architecture.md
            raise ConfigError("penalty 'l1' needs encoding 'woe' (one coefficient per feature)")

    @property
    def own_blocks(self) -> bool:
        """Each feature party holds its block of the optimiser's vectors in the clear (L1's orthant rules
        are then its own); the bank's share of them is zero."""
        return self.penalty == "l1"

    @property
    def table(self) -> TableShape:
        return TableShape()

    @property
    def lam(self) -> float:
        """The L2 penalty of the smooth objective (none with L1; see :attr:`l1`)."""
        return 1.0 / self.c if self.penalty == "l2" else 0.0

    @property
    def l1(self) -> float:
        return 1.0 / self.c if self.penalty == "l1" else 0.0

    @property
    def damping(self) -> float:
        """The ridge of the initial matrix's blocks: ``lam``, or with L1 ``1 / C`` (the blocks of one-hot
        or WOE columns are singular without it; it only shapes the preconditioner)."""
        return 1.0 / self.c

    def as_list(self) -> list[float]:
        t = self.table
        return [self.c, float(self.max_iter), self.tol, float(self.memory), float(self.encoding == "woe"),
                float(t.score_bits), float(t.grid_bits), float(t.index_bits), float(t.p_bits), float(self.penalty == "l1")]
