"""Secure aggregation's parameters, declared once (:mod:`misuan.params`)."""

from __future__ import annotations

import dataclasses
import math

from misuan.errors import ConfigError
from misuan.params import check_params, param

__all__ = ["MAX_PARTIES", "MIN_PARTIES", "SecAggParams", "default_threshold"]

MIN_PARTIES = 3
MAX_PARTIES = 100
RING_BITS = 64  # masked inputs are vectors of Z / 2^64 (uint64 with wrap-around)


def default_threshold(n: int) -> int:
    """More than half of the data parties. Semi-honestly run, the protocol never reveals a party's
    self-mask seed and its mask key together whatever the threshold; more than half is what stops an
    aggregator that tells different parties different survivor lists from collecting both (with
    ``c`` colluding data parties it takes ``t > (n + c) / 2``; Bonawitz et al. 2017, section 6)."""
    return n // 2 + 1


@dataclasses.dataclass(frozen=True)
class SecAggParams:
    """What every party of one aggregation must agree on."""

    threshold: int | None = param(
        None, "data parties whose shares rebuild a secret (default: more than half); the sum survives up to "
        "n - threshold dropouts", ge=2, le=MAX_PARTIES,
    )
    frac_bits: int = param(24, "fractional bits of the fixed-point encoding (2^-24: about 6e-8 resolution)", ge=0, le=52)
    max_abs: float = param(
        1e6, "bound on each entry of a party's vector; a larger one is refused before anything is sent", gt=0.0,
    )
    round_timeout_s: float = param(60.0, "how long the aggregator waits for each round before counting a party as dropped",
                                   gt=0.0, le=86400.0)
    broadcast: bool = param(True, "whether the aggregator sends the sum back to the surviving data parties")

    def __post_init__(self) -> None:
        check_params(self, "secagg")

    def threshold_for(self, n: int) -> int:
        """The threshold for ``n`` data parties, checked against ``n``."""
        t = default_threshold(n) if self.threshold is None else self.threshold
        if not MIN_PARTIES <= n <= MAX_PARTIES:
            raise ConfigError(f"secure aggregation needs {MIN_PARTIES} to {MAX_PARTIES} data parties, not {n}")
        if not n // 2 < t <= n:
            raise ConfigError(f"threshold {t} for {n} data parties: it must be above {n // 2} (half) and at most {n}")
        return t

    def check_capacity(self, n: int) -> None:
        """The encoded sum of ``n`` vectors within ``max_abs`` must fit the signed 64-bit ring."""
        need = math.log2(n * self.max_abs) + self.frac_bits + 1
        if need > RING_BITS - 1:
            raise ConfigError(
                f"{n} parties x max_abs {self.max_abs:g} at {self.frac_bits} fractional bits need {need:.1f} bits: "
                f"above the {RING_BITS - 1} of the ring; lower frac_bits or max_abs"
            )
