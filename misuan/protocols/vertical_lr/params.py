"""Training parameters of vertical LR (both parties must hold the same; the feature party checks)."""

from __future__ import annotations

import dataclasses

from misuan.errors import ConfigError
from misuan.protocols.vertical_lr.sigmoid_table import TableShape

__all__ = ["TrainingParams"]


@dataclasses.dataclass(frozen=True)
class TrainingParams:
    """``c``: scikit-learn's ``C`` (the inverse L2 strength; the intercept is not penalised);
    ``tol``: stop when the log loss changes by less than this, relatively, in an iteration;
    ``memory``: L-BFGS pairs kept; ``table``: the sigmoid table's fixed point and range."""

    c: float = 1.0
    max_iter: int = 50
    tol: float = 1e-4
    memory: int = 3
    table: TableShape = TableShape()

    def __post_init__(self) -> None:
        if not (0 < self.c <= 1e6):
            raise ConfigError(f"c must be in (0, 1e6], not {self.c}")
        if not (1 <= self.max_iter <= 1000):
            raise ConfigError(f"max_iter must be in 1..1000, not {self.max_iter}")
        if not (0 <= self.tol < 1):
            raise ConfigError(f"tol must be in [0, 1), not {self.tol}")
        if not (1 <= self.memory <= 20):
            raise ConfigError(f"memory must be in 1..20, not {self.memory}")

    @property
    def lam(self) -> float:
        return 1.0 / self.c

    def as_list(self) -> list[float]:
        t = self.table
        return [self.c, float(self.max_iter), self.tol, float(self.memory),
                float(t.score_bits), float(t.grid_bits), float(t.index_bits), float(t.p_bits)]
