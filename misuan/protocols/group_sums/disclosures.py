"""What group sums reveal, declared once; both sides record these entries (docs/privacy.md lists them)."""

from __future__ import annotations

from misuan.net.disclosure import DisclosureKind

ENCRYPTED_COLUMNS = DisclosureKind(
    "group_sums", "its per-row columns (decision, outcome, PD), encrypted under its key", "ciphertext",
    "label_party", "feature_party",
)
GROUP_SUMS = DisclosureKind(
    "group_sums", "per group of each protected attribute: the row count and the sums of the label party's columns",
    "aggregate", "feature_party", "label_party",
)

DISCLOSURES = (ENCRYPTED_COLUMNS, GROUP_SUMS)
