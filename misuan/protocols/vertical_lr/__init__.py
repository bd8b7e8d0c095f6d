"""Vertical logistic regression between a label party (the bank) and one or more feature parties.

L2-penalised logistic regression over the one-hot bins of every party's features (scikit-learn's
objective with ``C``), or, opt-in, over their bins' WOE (one coefficient per feature,
:mod:`.encoding`), trained by L-BFGS on coefficients no feature party sees during training; with
WOE encoding, opt-in, L1 by OWL-QN (:func:`.lbfgs.run_owlqn`), each feature party then holding its
own block of the optimiser's vectors in the clear (it learns its gradient at every point tried and,
subtracting its block from the opened totals, the inner products and L1 norm of the others');
the construction and its measured alternatives are in docs/architecture.md ("Vertical LR: the
optimiser and the construction, decided"), the leakage in docs/privacy.md.

Per iteration: the scores ``z = b0 + X_b w_b + sum_p X_p w_p`` as shares mod 2^64 (the bank's block
in the clear at the bank, each ``X_p w_p`` by a lookup of the bank's share of ``w_p`` at feature
party ``p``'s bins from punctured OT keys, :mod:`.bin_shares`); ``p = sigmoid(z)`` as shares by an
oblivious table lookup (:mod:`.sigmoid_table`) between the bank and the *lead* (the first feature
party), which first adds the other feature parties' shares of the scores to its own; the gradient's
block of each feature party as shares (the lead hands each its share of ``p``) and the bank's block
opened to the bank (scatters, :mod:`.bin_shares`); L-BFGS's direction from opened inner products
(:mod:`.lbfgs`, cross terms by Gilboa products from OT, :mod:`.products`) and an initial matrix of
each party's own label-free block plus the cross blocks of independent parties (:mod:`.blocks`).
Constructions cited: IKNP OT extension (Ishai et al. 2003), 1-out-of-N OT from log N OTs (Naor and
Pinkas 1999), Gilboa's OT multiplication (1999), SecureML's local truncation (Mohassel and Zhang
2017), L-BFGS (Nocedal 1980); zero-sum masks for the sums (as in Bonawitz et al. 2017).

Security model: semi-honest, no collusion. Leakage (what each party learns beyond its output; the
ledger's catalogue in :mod:`.disclosures`): a feature party learns the bank's row count and bins per
feature, its base rate rounded to 0.01, per iteration a handful of opened optimiser scalars (inner
products over every block) and one Woodbury coefficient of its block; at the end its own
coefficients. The bank learns each feature party's row count and bins per feature, one label-free
scalar of its block, the same opened scalars (from which, subtracting its own block, the inner
products of the feature parties' blocks: of the one partner's, or with several only their sum, the
partners' shares being masked by zero-sum masks), each block's projection in the preconditioner, and
its own gradient each iteration. Between feature parties only masked per-row shares pass (score
shares to the lead, uniform; its ``p`` shares back, statistically hiding) and a mask seed. During training nobody receives
another's per-row values, partial scores, residuals, per-row gradients or (the bank) a feature
party's coefficients. Joint scoring (:mod:`.scoring`) tells the bank, per row scored, each feature
party's points and up to ``k`` of its features with the points each falls short. WOE encoding
(opt-in) adds, before training: the bank and each feature party learn the event count of each of its
bins (the bank's labels scattered into them, the sums opened), the bank its rows per bin. With
several feature parties, each learns which of the customers it shares with the bank all the others
share too (:mod:`.common_rows`: the rows the training takes).

Layout: :mod:`.messages` (``PROTOCOL``, the wire messages), :mod:`.params`, :mod:`.disclosures`,
:mod:`.label_party` and :mod:`.feature_party` (the roles), :mod:`.exchange` (what both share on
the wire, and the masked openings), the building blocks above, :mod:`.common_rows`, :mod:`.ring`, :mod:`.u128` and
:mod:`.shared_vectors` (arithmetic).
"""

from misuan.protocols.vertical_lr.common_rows import common_rows, receive_common_rows, send_common_rows
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
    "TABLE_SHARING", "check_part_scores", "common_rows", "merge_reasons", "own_points", "pd_of_score", "receive_partner_table",
    "receive_common_rows", "score_feature_party", "score_label_party", "send_common_rows", "send_partner_table",
    "train_feature_party", "train_label_party",
]
