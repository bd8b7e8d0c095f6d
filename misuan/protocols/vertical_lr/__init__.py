"""Vertical logistic regression between a label party (the bank) and a feature party (the partner).

L2-penalised logistic regression over the one-hot bins of both parties' features (scikit-learn's
objective with ``C``), or, opt-in, over their bins' WOE (one coefficient per feature,
:mod:`.encoding`), trained by L-BFGS on coefficients the partner never sees during training;
the construction and its measured alternatives are in docs/architecture.md ("Vertical LR: the
optimiser and the construction, decided"), the leakage in docs/privacy.md.

Per iteration: the scores ``z = b0 + X_b w_b + X_p w_p`` as shares mod 2^64 (the bank's block in
the clear at the bank, ``X_p w_p`` by a lookup of the bank's share of ``w_p`` at the partner's bins
from punctured OT keys, :mod:`.bin_shares`); ``p = sigmoid(z)`` as shares by an oblivious table
lookup (:mod:`.sigmoid_table`); the gradient's partner block as shares and its bank block opened to
the bank (scatters, :mod:`.bin_shares`); L-BFGS's direction from opened inner products
(:mod:`.lbfgs`, cross terms by Gilboa products from OT, :mod:`.products`) and an initial matrix of
each party's own label-free block plus the cross block of independent parties (:mod:`.blocks`).
Constructions cited: IKNP OT extension (Ishai et al. 2003), 1-out-of-N OT from log N OTs (Naor and
Pinkas 1999), Gilboa's OT multiplication (1999), SecureML's local truncation (Mohassel and Zhang
2017), L-BFGS (Nocedal 1980).

Security model: semi-honest, no collusion. Leakage (what each party learns beyond its output; the
ledger's catalogue in :mod:`.disclosures`): the partner learns the bank's row count and bins per
feature, its base rate rounded to 0.01, one label-free scalar of the bank's block, and per
iteration a handful of opened optimiser scalars (inner products over both blocks); at the end its
own coefficients. The bank learns the partner's row count and bins per feature, one label-free
scalar of the partner's block, the same opened scalars (from which, subtracting its own block, the
inner products of the partner's block), and its own gradient each iteration. During training
neither receives another's per-row values, partial scores, residuals, per-row gradients or (the
bank) the partner's coefficients. Joint scoring (:mod:`.scoring`) tells the bank, per row scored,
the partner's points and up to ``k`` of its features with the points each falls short. WOE
encoding (opt-in) adds, before training: both learn the event count of each of the partner's bins
(the bank's labels scattered into them, the sums opened), the bank the partner's rows per bin.

Layout: :mod:`.messages` (``PROTOCOL``, the wire messages), :mod:`.params`, :mod:`.disclosures`,
:mod:`.label_party` and :mod:`.feature_party` (the roles), :mod:`.exchange` (what both share on
the wire), the building blocks above, :mod:`.ring`, :mod:`.u128` and :mod:`.shared_vectors`
(arithmetic).
"""

from misuan.protocols.vertical_lr.disclosures import DISCLOSURES
from misuan.protocols.vertical_lr.feature_party import PartnerModel, train_feature_party
from misuan.protocols.vertical_lr.label_party import BankModel, train_label_party
from misuan.protocols.vertical_lr.messages import PROTOCOL, STEP
from misuan.protocols.vertical_lr.params import TrainingParams
from misuan.protocols.vertical_lr.scoring import (
    TABLE_SHARING,
    JointScores,
    check_part_scores,
    merge_reasons,
    own_points,
    pd_of_score,
    receive_partner_table,
    score_feature_party,
    score_label_party,
    send_partner_table,
)

__all__ = [
    "DISCLOSURES", "PROTOCOL", "STEP", "BankModel", "JointScores", "PartnerModel", "TrainingParams",
    "TABLE_SHARING", "check_part_scores", "merge_reasons", "own_points", "pd_of_score", "receive_partner_table",
    "score_feature_party", "score_label_party", "send_partner_table", "train_feature_party", "train_label_party",
]
