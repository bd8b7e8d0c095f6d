"""The wire message of joint describe; its name is part of the protocol (``PROTOCOL``'s version)."""

from __future__ import annotations

import dataclasses

import numpy as np

from misuan.net import wire
from misuan.net.protocol import ProtocolInfo

PROTOCOL = ProtocolInfo("describe", 1, "summary statistics of each party's columns over the intersection")
STEP = "describe"
MAX_COLUMNS = 100_000  # a peer's message with more column names is refused


@wire.message("describe.SharedSummaries")
@dataclasses.dataclass
class SharedSummaries:
    n_rows: int
    columns: list[str]
    levels: np.ndarray  # float64 quantile levels in (0, 1), increasing
    missing_rate: np.ndarray  # float64 per column
    mean: np.ndarray
    std: np.ndarray
    quantiles: np.ndarray  # float64 (columns, levels)
