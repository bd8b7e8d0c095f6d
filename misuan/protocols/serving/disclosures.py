"""What online scoring reveals, declared once; both sides record these entries (docs/privacy.md lists them)."""

from __future__ import annotations

from misuan.net.disclosure import DisclosureKind

_P = "serving"
MODEL_PIN = DisclosureKind(_P, "the SHA-256 of its model part, and the model id", "plaintext", "each party", "the other party")
QUERY = DisclosureKind(_P, "the normalised IDs of a request's applicants (and decoys), and when", "plaintext",
                       "label_party", "feature_party")
CONTRIBUTION = DisclosureKind(
    _P, "per applicant: whether it knows the ID, and per tree the leaves its splits allow", "plaintext",
    "feature_party", "label_party",
)

POINTS = DisclosureKind(
    _P, "per applicant: whether it knows the ID, the sum of its scorecard points, and its 8 worst features with "
    "the points each falls short of its best bin", "plaintext", "feature_party", "label_party",
)

DISCLOSURES = (MODEL_PIN, QUERY, CONTRIBUTION, POINTS)
