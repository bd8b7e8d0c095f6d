"""What secure sum reveals, declared once; both sides record these entries (docs/privacy.md lists them)."""

from __future__ import annotations

from misuan.net.disclosure import DisclosureKind

PARTIAL_SUM = DisclosureKind("secure_sum", "partial sum of additive shares", "aggregate", "each party", "each peer")
TOTAL = DisclosureKind("secure_sum", "sum of all parties' vectors", "plaintext", "all", "each party")

DISCLOSURES = (PARTIAL_SUM, TOTAL)
