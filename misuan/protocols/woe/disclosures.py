"""What WOE/IV reveals, declared once; both sides record these entries (docs/privacy.md lists them).

Entries about one feature carry its name in the detail (``feature=...``), not in ``what``.
:func:`record_bin_sums` and :func:`record_merges` record the per-feature entries of one message,
so that both parties record the same rows from the same message.
"""

from __future__ import annotations

import numpy as np

from misuan.net.channel import Channel
from misuan.net.disclosure import CHECK_FAILED, DisclosureKind
from misuan.protocols.woe.messages import BinSums, MergeDecisions
from misuan.protocols.woe.params import SUPERVISED, WoeParams

__all__ = [
    "BIN_COUNTS",
    "BIN_EDGES",
    "DISCLOSURES",
    "ENCRYPTED_LABELS",
    "INCONSISTENT_BIN_SUMS",
    "IV_PER_FEATURE",
    "MERGE_BOUNDARIES",
    "PREBIN_COUNTS",
    "record_bin_sums",
    "record_merges",
]

_SUPERVISED = "chimerge or tree features"
ENCRYPTED_LABELS = DisclosureKind("woe", "encrypted labels", "ciphertext", "label_party", "feature_party")
BIN_COUNTS = DisclosureKind(
    "woe", "per-bin row count and positive count of a feature", "aggregate", "feature_party", "label_party",
    "quantile or equal_width features",
)
PREBIN_COUNTS = DisclosureKind(
    "woe", "per-pre-bin row count and positive count of a feature", "aggregate", "feature_party", "label_party",
    _SUPERVISED,
)
BIN_EDGES = DisclosureKind("woe", "bin edges of a feature", "plaintext", "feature_party", "label_party", "share_edges")
MERGE_BOUNDARIES = DisclosureKind(
    "woe", "merge boundaries of a feature", "plaintext", "label_party", "feature_party", _SUPERVISED
)
IV_PER_FEATURE = DisclosureKind("woe", "IV per feature", "aggregate", "label_party", "feature_party", "share_iv")
# not a new disclosure but the record of one that failed a check: the label party's ledger keeps which
# check the feature party's bin sums failed (detail: check, feature), before the job stops
INCONSISTENT_BIN_SUMS = DisclosureKind(
    "woe", "bin sums of a feature that failed a consistency check", "aggregate", "feature_party", "label_party",
    CHECK_FAILED,
)

DISCLOSURES = (
    ENCRYPTED_LABELS, BIN_COUNTS, PREBIN_COUNTS, BIN_EDGES, MERGE_BOUNDARIES, IV_PER_FEATURE, INCONSISTENT_BIN_SUMS,
)


def record_bin_sums(
    chan: Channel, step: str, msg: BinSums, feature_party: str, label_party: str, params: WoeParams
) -> None:
    """Per feature of ``msg``: its (pre-)bin counts, and its edges when the job shares them."""
    for name, method, counts, cuts in zip(msg.features, msg.methods, msg.counts, msg.cuts, strict=True):
        kind = PREBIN_COUNTS if method in SUPERVISED else BIN_COUNTS
        chan.disclose(
            step, kind, feature_party, label_party, (len(counts), 2), feature=name, min_bin_size=params.min_bin_size
        )
        if params.share_edges:
            chan.disclose(step, BIN_EDGES, feature_party, label_party, np.shape(cuts), feature=name)


def record_merges(chan: Channel, step: str, msg: MergeDecisions, label_party: str, feature_party: str) -> None:
    """Per supervised feature: the merge boundaries the label party decided."""
    for name, starts in zip(msg.features, msg.starts, strict=True):
        chan.disclose(step, MERGE_BOUNDARIES, label_party, feature_party, np.shape(starts), feature=name)
