"""What monitoring reveals, declared once; both sides record these entries (docs/privacy.md lists them)."""

from __future__ import annotations

from misuan.net.disclosure import DisclosureKind

FEATURE_STABILITY = DisclosureKind(
    "monitor", "stability index and level of each of its features between the two periods", "aggregate",
    "feature_party", "label_party",
)
ALERTS = DisclosureKind("monitor", "the period's monitoring alerts", "aggregate", "label_party", "feature_party")

DISCLOSURES = (FEATURE_STABILITY, ALERTS)
