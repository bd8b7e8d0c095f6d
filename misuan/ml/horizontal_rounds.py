"""The aggregation rounds of one horizontal fit, the same object at every data party and at the aggregator.

Each call is one secure aggregation (:mod:`misuan.protocols.secagg`) under its own step name
(``<step>/<k>``). The first round fixes which data parties the fit sums; a later round from any other
set stops the fit with :class:`PartyDroppedError` (at the aggregator before anything is unmasked,
at the data parties when they see the contributors), since two sums over different sets would tell
the difference: a dropped party's own share. A party gone in an earlier round is not waited for again.
Every party also binds the round to a ``context`` (the model's parameters): a party configured
otherwise is refused at the first round instead of growing a different model.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from misuan.errors import DataError, PartyDroppedError
from misuan.net.channel import Channel
from misuan.protocols.secagg import SecAggParams, aggregate_as_aggregator, aggregate_as_data_party

__all__ = ["FRAC_BITS", "FitRounds", "checked_rows"]

FRAC_BITS = 20  # fixed-point precision of the aggregated sums (sums over rows, not means)


def checked_rows(x: np.ndarray, y: np.ndarray, *, missing: bool) -> tuple[np.ndarray, np.ndarray]:
    """A data party's features and 0/1 labels as float64, one label per row; NaN features allowed
    (as missing values) only where ``missing``, infinite ones never."""
    xa, ya = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if xa.ndim != 2 or ya.shape != (xa.shape[0],):
        raise DataError(f"features must be (rows, columns) and labels (rows,): got {xa.shape} and {ya.shape}")
    bad = np.isinf(xa).any() if missing else not np.all(np.isfinite(xa))
    if bad or not np.isin(ya, (0.0, 1.0)).all():
        what = "finite or missing (NaN)" if missing else "finite"
        raise DataError(f"features must be {what} and labels 0 (good) or 1 (bad)")
    return xa, ya


class FitRounds:
    """``rounds(local)``: this party's vector (``local()``, zeros at the aggregator) -> the sum over the fit's parties."""

    def __init__(
        self, chan: Channel, *, aggregator: str, data_parties: list[str], step: str, context: str,
        round_timeout_s: float = 60.0,
    ) -> None:
        self.chan, self.aggregator, self.data_parties = chan, aggregator, list(data_parties)
        self.step, self.context = step, context
        bound = 2.0 ** (62 - FRAC_BITS - int(np.ceil(np.log2(len(data_parties)))))  # the widest the ring allows
        self.params = SecAggParams(frac_bits=FRAC_BITS, max_abs=bound, round_timeout_s=round_timeout_s)
        self.contributors: list[str] | None = None
        self.rounds = 0

    @property
    def is_aggregator(self) -> bool:
        return self.chan.party == self.aggregator

    def __call__(self, local: Callable[[], np.ndarray]) -> np.ndarray:
        name = f"{self.step}/{self.rounds}"
        self.rounds += 1
        vector = local()
        if self.is_aggregator:
            gone = frozenset(self.data_parties) - set(self.contributors or self.data_parties)
            res = aggregate_as_aggregator(self.chan, self.data_parties, self.params, step=name, context=self.context,
                                          skip=gone, expected=self.contributors)
            total, contributors = res.total, res.contributors
        else:
            out = aggregate_as_data_party(self.chan, vector, self.aggregator, self.data_parties, self.params, name,
                                          context=self.context)
            assert out is not None  # the sum is broadcast
            total, contributors = out
        if self.contributors is None:
            self.contributors = contributors
        elif contributors != self.contributors:
            raise PartyDroppedError(f"round {name} summed {contributors}, the fit's earlier rounds {self.contributors}")
        return total
