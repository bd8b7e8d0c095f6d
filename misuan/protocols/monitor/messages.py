"""The wire messages of monitoring; their names are part of the protocol (``PROTOCOL``'s version)."""

from __future__ import annotations

import dataclasses

import numpy as np

from misuan.net import wire
from misuan.net.protocol import ProtocolInfo

PROTOCOL = ProtocolInfo("monitor", 1, "each party's feature stability between two periods, and the period's alerts")
STEP = "monitor"
LEVELS = ("stable", "warn", "alert")
MAX_FEATURES = 10_000
MAX_ALERTS = 10_000


@wire.message("monitor.FeatureStability", max_bytes=8 << 20)
@dataclasses.dataclass
class FeatureStability:
    """The feature party's stability index and level of each of its features (nothing per bin)."""

    features: list[str]
    index: np.ndarray  # float64, one per feature
    levels: list[str]  # one of LEVELS per feature


@wire.message("monitor.Alerts", max_bytes=8 << 20)
@dataclasses.dataclass
class Alerts:
    """The period's alerts as sentences, sent back to the feature party."""

    alerts: list[str]
