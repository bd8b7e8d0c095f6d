"""Group sums: the label party's per-row columns summed by the feature party's groups, without moving rows.

What it is for: a fairness audit of a joint model's decisions when the protected attribute (sex,
age, marital status) is held by the partner. The label party holds, for the rows both agreed on
(a PSI step's shared customers, a model step's hold-out rows), small non-negative integer columns:
a column of ones, the decision (1: approve), approve-and-repaid, repaid, defaulted, the PD in fixed
point. It encrypts each row's columns packed in one Okamoto-Uchiyama ciphertext under its own key
(the WOE protocol's construction, several columns at once) and sends them. The feature party groups
its rows by each protected attribute (the groups come from a policy: categories, or age bands),
merges every group of fewer than ``min_group_size`` rows into one "other" group (joined by the
smallest other groups while it is still too small, so no small group shows even as a difference:
the small-cell guard), multiplies each group's ciphertexts (a homomorphic sum),
re-randomises and sends one ciphertext per group; the label party decrypts and unpacks the sums.

Security model: semi-honest (as the WOE protocol: a label party that encrypted a one-hot column
would learn one row's group; a malicious-secure variant needs the WOE protocol's consistency checks).
Leakage (the catalogue, :mod:`.disclosures`): the feature party sees only ciphertexts; the label
party learns, per group of each attribute, its row count and the sums of its own columns there:
the approval and default rates by group that the audit is about, and how many of the agreed rows
fall in each group (groups below the small-cell size are never shown alone).

Layout: :mod:`.messages`, :mod:`.disclosures`, :mod:`.label_party`, :mod:`.feature_party`. Step adapter:
:mod:`misuan.node.steps.fairness`.
"""

from misuan.protocols.group_sums.disclosures import DISCLOSURES
from misuan.protocols.group_sums.feature_party import OTHER, merge_small_groups, sums_feature_party
from misuan.protocols.group_sums.label_party import sums_label_party
from misuan.protocols.group_sums.messages import PROTOCOL, STEP, EncryptedColumns, GroupSums

__all__ = [
    "DISCLOSURES", "OTHER", "PROTOCOL", "STEP", "EncryptedColumns", "GroupSums", "merge_small_groups",
    "sums_feature_party", "sums_label_party",
]
