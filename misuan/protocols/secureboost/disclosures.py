"""What SecureBoost reveals, declared once; both sides record these entries (docs/privacy.md lists them).

Each entry is recorded per feature party; ``detail`` carries the tree, the depth and, for tree
shapes, leaf sets and split decisions, the purpose (``model``, ``eval`` or ``predict``).
"""

from __future__ import annotations

from misuan.net.disclosure import CHECK_FAILED, DisclosureKind
from misuan.net.protocol import FEATURE_PARTY, LABEL_PARTY

_P = "secureboost"
LABEL, FEATURE = LABEL_PARTY, FEATURE_PARTY

SCHEMA = DisclosureKind(_P, "feature names and bin counts", "plaintext", FEATURE, LABEL)
PUBLIC_KEY = DisclosureKind(_P, "HE public key", "plaintext", LABEL, FEATURE, when="HE histograms")
GRADIENTS = DisclosureKind(
    _P, "encrypted gradients and hessians (packed)", "ciphertext", LABEL, FEATURE,
    when="HE histograms: every tree but a label-party-only first tree",
)
OT_SESSION = DisclosureKind(_P, "OT-extension session id (random)", "plaintext", LABEL, FEATURE, when="OT histograms")
OT_BASE = DisclosureKind(_P, "base-OT sender's point (random)", "plaintext", FEATURE, LABEL, when="OT histograms")
OT_POINTS = DisclosureKind(
    _P, "base-OT receiver's points (its secret choice bits, blinded)", "blinded", LABEL, FEATURE, when="OT histograms"
)
OT_COLUMNS = DisclosureKind(
    _P, "OT-extension columns (its bins, masked by keystreams of seeds the label party lacks)", "blinded", FEATURE,
    LABEL, when="OT histograms",
)
MASKED_GRADIENTS = DisclosureKind(
    _P, "gradients and hessians one-time padded per row and feature (OT-extension keys)", "blinded", LABEL, FEATURE,
    when="OT histograms: every tree but a label-party-only first tree",
)
SAMPLED_ROWS = DisclosureKind(_P, "rows sampled for the tree", "plaintext", LABEL, FEATURE, when="subsample < 1")
NODE_ROWS = DisclosureKind(_P, "instance space of every node of the level", "plaintext", LABEL, FEATURE)
HISTOGRAMS = DisclosureKind(
    _P, "per-bin gradient and hessian sums of the feature party's features, per node", "aggregate", FEATURE, LABEL
)
SPLIT_CHOICE = DisclosureKind(
    _P, "chosen split candidates (feature, bin, default direction) of its own features", "plaintext", LABEL, FEATURE
)
PARTITION = DisclosureKind(
    _P, "instance partition of nodes split on the feature party's features", "plaintext", FEATURE, LABEL
)
TREE_SHAPES = DisclosureKind(
    _P, "tree shapes (child links of every split node, no values)", "plaintext", LABEL, FEATURE,
)
LEAF_SETS = DisclosureKind(
    _P, "per row and tree, the leaves consistent with the feature party's splits", "plaintext", FEATURE, LABEL,
    when="leaf-set mode (the default): evaluation on an eval set, and prediction",
)
DECISIONS = DisclosureKind(
    _P, "split decisions of the feature party's split nodes for each row", "plaintext", FEATURE, LABEL,
    when="per-node mode: evaluation on an eval set, and prediction",
)

# not a new disclosure but the record of one that failed a check: the label party's ledger keeps which
# check a feature party's histogram, partition or leaf sets failed (detail: check), before the job stops
INCONSISTENT_REPLY = DisclosureKind(
    "secureboost", "a reply that failed a consistency check", "aggregate", FEATURE, LABEL, CHECK_FAILED
)

DISCLOSURES = (
    SCHEMA, PUBLIC_KEY, GRADIENTS, OT_SESSION, OT_BASE, OT_POINTS, OT_COLUMNS, MASKED_GRADIENTS, SAMPLED_ROWS, NODE_ROWS, HISTOGRAMS, SPLIT_CHOICE, PARTITION, TREE_SHAPES, LEAF_SETS,
    DECISIONS, INCONSISTENT_REPLY,
)
