"""Online joint scoring of a SecureBoost model or a two-part scorecard: the bank's node asks, per
applicant, what the partner's model part contributes, and combines it with its own.

For trees, as below; for a scorecard (:mod:`.scorecard`), the partner answers its points and its
worst features with their shortfalls (``serving.PointsReply``), and the session, pins, missing-value
path and fallback are the same.

Session. The two nodes keep one channel (gRPC + mutual TLS). At its start each side sends its pin:
the model id, the SHA-256 of its own model part and the hash it expects of the peer's; a mismatch
refuses to serve, one line naming both hashes (``serving.Hello``).

Per request. The bank sends the applicants' normalised IDs (``serving.ScoreRequest``; with cover
queries, decoys from the PSI intersection among them). The partner looks each up in its feature
store and answers, per applicant and tree, the set of leaves its own splits allow (the leaf-set
mode of :mod:`misuan.protocols.secureboost`: never its thresholds, features or the decision at a
single node) and whether it knows the ID (``serving.ScoreReply``). An applicant the partner does
not know is answered as if all its features were missing: each tree's default directions, the
same path the model takes for missing values, and flagged. The bank intersects the leaf sets with
its own splits: exactly one leaf per tree remains, and the margin is the sum of their values.

Security model: semi-honest. Leakage: the partner learns which IDs were queried and when (cover queries
with ``k`` decoys hide which of ``k + 1`` was the applicant, at ``k + 1`` times the cost), the bank
learns per applicant the partner's leaf sets (which constrain, but do not reveal, the partner's
feature values: the same as batch prediction) and whether the partner knows the applicant. Both
record every request in their ledgers (the catalogue, :mod:`.disclosures`).

Layout: :mod:`.messages`, :mod:`.disclosures`, :mod:`.partner` (the feature party), :mod:`.bank`
(the label party), :mod:`.scorecard` (both sides of a scorecard), :mod:`.parts` (which a part file holds). The node-side service, HTTP API and page: :mod:`misuan.serving`.
"""

from misuan.protocols.serving.bank import BankModel, BankPart, ScoreResult
from misuan.protocols.serving.disclosures import DISCLOSURES
from misuan.protocols.serving.messages import PROTOCOL, STEP, Hello, PointsReply, ScoreReply, ScoreRequest
from misuan.protocols.serving.partner import (
    FeatureLookup,
    PartnerModel,
    PartnerPart,
    check_pins,
    serve_partner,
)
from misuan.protocols.serving.parts import bank_part, partner_part
from misuan.protocols.serving.scorecard import BankScorecard, PartnerScorecard, ScorecardPart, is_scorecard

__all__ = [
    "DISCLOSURES", "PROTOCOL", "STEP", "BankModel", "BankPart", "BankScorecard", "FeatureLookup", "Hello",
    "PartnerModel", "PartnerPart", "PartnerScorecard", "PointsReply", "ScoreReply", "ScoreRequest", "ScoreResult",
    "ScorecardPart", "bank_part", "check_pins", "is_scorecard", "partner_part", "serve_partner",
]
