"""Monitoring a joint model over a new period (:mod:`misuan.ml.monitoring` does the arithmetic).

Each party computes, on its own rows of the reference and current periods, the stability index of
each of its features (CSI) with a sample-size-aware level; the label party also computes the
score's stability and, with the period's outcomes, the back-test. No row crosses: the feature party
sends only its features' indices and levels (``monitor.FeatureStability``), and the label party sends
back the period's alerts (``monitor.Alerts``), so both sides hold the alerts their model part raised.

Security model: semi-honest. Leakage, per period (the catalogue, :mod:`.disclosures`): to the label
party, one number and a level per feature of the feature party (how much that feature's
distribution moved, not where); to the feature party, the alerts, which name features and may state
the score's stability and the back-test's AUC change. Nothing per bin or per row.

Layout: :mod:`.messages`, :mod:`.disclosures`, :mod:`.feature_party`, :mod:`.label_party`. Step
adapter: :mod:`misuan.node.steps.monitor`.
"""

from misuan.protocols.monitor.disclosures import DISCLOSURES
from misuan.protocols.monitor.feature_party import monitor_feature_party
from misuan.protocols.monitor.label_party import monitor_label_party
from misuan.protocols.monitor.messages import PROTOCOL, STEP, Alerts, FeatureStability

__all__ = ["DISCLOSURES", "PROTOCOL", "STEP", "Alerts", "FeatureStability", "monitor_feature_party", "monitor_label_party"]
