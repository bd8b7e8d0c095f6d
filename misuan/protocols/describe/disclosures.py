"""What joint describe reveals, declared once; both sides record these entries (docs/privacy.md lists them)."""

from __future__ import annotations

from misuan.net.disclosure import DisclosureKind

# one entry per shared column, the column's name in the detail (``column``), shape (3 + levels,)
SUMMARY_STATISTICS = DisclosureKind(
    "describe", "summary statistics of a column", "aggregate", "each party", "the other party",
    "the column is listed in the discloser's share",
)

DISCLOSURES = (SUMMARY_STATISTICS,)
