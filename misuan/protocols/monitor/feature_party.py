"""The feature party's side: send its features' stability, receive the period's alerts."""

from __future__ import annotations

import numpy as np

from misuan.errors import MalformedMessageError
from misuan.net.channel import Channel
from misuan.protocols.monitor.disclosures import ALERTS, FEATURE_STABILITY
from misuan.protocols.monitor.messages import MAX_ALERTS, STEP, Alerts, FeatureStability

__all__ = ["monitor_feature_party"]


def monitor_feature_party(
    chan: Channel, label_party: str, features: list[str], index: list[float], levels: list[str], *, step: str = STEP,
) -> list[str]:
    """Send ``features``' stability indices and levels to ``label_party``; returns the alerts it sends back."""
    chan.send(label_party, f"{step}/stability", FeatureStability(list(features), np.asarray(index, np.float64), list(levels)))
    chan.disclose(step, FEATURE_STABILITY, chan.party, label_party, (len(features),))
    msg = chan.recv(label_party, f"{step}/alerts", expect=Alerts)
    if len(msg.alerts) > MAX_ALERTS or not all(isinstance(a, str) and len(a) < 1000 for a in msg.alerts):
        raise MalformedMessageError(f"{label_party} sent malformed monitoring alerts")
    chan.disclose(step, ALERTS, label_party, chan.party, (len(msg.alerts),))
    return list(msg.alerts)
