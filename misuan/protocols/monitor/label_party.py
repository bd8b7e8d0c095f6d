"""The label party's side: receive the feature party's stability, send back the period's alerts."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from misuan.errors import MalformedMessageError
from misuan.net.channel import Channel
from misuan.protocols.monitor.disclosures import ALERTS, FEATURE_STABILITY
from misuan.protocols.monitor.messages import LEVELS, MAX_FEATURES, STEP, Alerts, FeatureStability

__all__ = ["monitor_label_party"]


def _checked(msg: FeatureStability, peer: str) -> list[tuple[str, float, str]]:
    n = len(msg.features)
    ok = (n <= MAX_FEATURES and msg.index.shape == (n,) and msg.index.dtype == np.float64 and len(msg.levels) == n
          and all(isinstance(f, str) and 0 < len(f) < 256 for f in msg.features)
          and all(level in LEVELS for level in msg.levels) and bool(np.all(msg.index >= 0)))
    if not ok:
        raise MalformedMessageError(f"{peer} sent a malformed feature stability report")
    return list(zip(msg.features, msg.index.tolist(), msg.levels, strict=True))


def monitor_label_party(
    chan: Channel, feature_party: str, alerts_for: Callable[[list[tuple[str, float, str]]], list[str]], *,
    step: str = STEP,
) -> tuple[list[tuple[str, float, str]], list[str]]:
    """Receive the feature party's (feature, index, level) list; ``alerts_for`` turns it (with what this
    party computed itself) into the period's alerts, which go back to the feature party. Returns both."""
    rows = _checked(chan.recv(feature_party, f"{step}/stability", expect=FeatureStability), feature_party)
    chan.disclose(step, FEATURE_STABILITY, feature_party, chan.party, (len(rows),))
    alerts = alerts_for(rows)
    chan.send(feature_party, f"{step}/alerts", Alerts(alerts))
    chan.disclose(step, ALERTS, chan.party, feature_party, (len(alerts),))
    return rows, alerts
