"""SecureBoost (Cheng et al. 2019): vertical gradient boosting between a label party and feature parties.

Parties. The *label party* holds the labels ``y``, possibly some features, and (HE histograms) the
HE key pair. Each *feature party* holds features of the same aligned rows (after PSI). Row ``i`` is
the same customer everywhere.

The histograms come one of two ways (``histograms``; ``"auto"`` takes OT while its keys fit in
2 GiB per feature party), with the same sums, models and leakage:

- **OT** (:mod:`.shares`): additive shares from IKNP OT extension (:mod:`misuan.crypto.ot_extension`):
  per tree, each row's gradient pair is one-time padded per feature under keys the feature party
  holds for every bin but the row's own; its per-bin share sums minus the label party's pad sums
  are the bin sums. One AES block per (row, feature, bin) instead of modular arithmetic per row.
- **HE**: the rows' gradient pairs encrypted (Okamoto-Uchiyama by default, Paillier), summed per bin
  under encryption, packed, re-randomised, decrypted by the label party.

Protocol (per tree; messages under the step's name, ``secureboost/...``):

1. Setup (once): every feature party sends its schema (feature names, bins per feature, the
   monotone constraints it declares on its own features); the label party names the histogram
   method and sends either its HE public key (2048 bits at least, which both sides enforce) or an
   OT-extension session id; for OT, the feature party sends its base-OT message, the label party
   its 128 base-OT points, and the feature party the extension's columns, chunk by chunk, with one
   choice bit per (row, feature, bin): "not this row's bin".
2. The label party computes gradients ``g`` and hessians ``h`` (logistic or squared loss) in fixed
   point and sends them once per tree: per row and sampled feature, the pair plus the row's pads
   (OT), or per row the packed plaintext ``enc(g) * 2**W + enc(h)`` encrypted with fresh randomness
   (HE).
3. Level by level: the label party sends the instance space of every node of the level (a row ->
   node vector) and names the nodes whose histograms a feature party must compute: the root, then
   the smaller child of each split (the larger one is the parent minus it, computed by the label
   party in plaintext: *histogram subtraction*). The feature party sums its shares (OT), or the
   ciphertexts into its own quantile bins per node and feature, packs several bins into one
   ciphertext (``c_0^(2^(2W k)) * ...``) and re-randomises every ciphertext it sends (HE).
4. The label party removes its pads or decrypts, checks that every feature's bins add up to the node's sums, finds the
   best split of every node over all parties' features (XGBoost's gain and candidates, "missing vs
   present" included, learned default direction for missing values, monotone constraints as
   XGBoost's weight bounds), and tells each feature party only which of *its own* candidates
   (feature, bin, default direction) won; that party replies with the resulting instance partition
   (rows going left), which must add up to the chosen bins' sums. Leaves get
   ``-eta * G / (H + lambda)``, clipped to the node's bounds under monotone constraints.
5. At the end the label party sends the kept trees' shapes (child links, no values). At prediction
   each feature party answers, per row and tree, the set of leaves its own splits allow (leaf-set
   mode, the default); the label party intersects them with its own and finds each row's leaf. In
   the per-node mode (a feature party must allow it: ``prediction_mode = "nodes"``) it answers its
   decision at every split node instead, which exact TreeSHAP explanations need.

Security model: semi-honest parties, no collusion between the label party and a feature party.
Leakage (what each party learns beyond its output, as in SecureBoost):

- A feature party learns: the instance space (row set) of every node, hence the partition induced by
  every split of the tree, on any party's feature; the number of trees, levels and nodes; which of
  its own features and thresholds were chosen and in which node; the rows sampled for each tree
  (``subsample``); with HE, the codec's slot width (from which ``max |gradient|`` rounded up to a
  power of two can be read; constant for logistic loss). It never receives a plaintext gradient,
  hessian, label, prediction, leaf value or gain: only one-time padded values (OT) or ciphertexts
  under the label party's key (HE).
- The label party learns: per node, the aggregate gradient and hessian sums of every bin of every
  feature of every feature party (*SecureBoost's known leakage*: with the row sets it can infer bin
  membership of small nodes, and bin counts wherever hessians are constant, e.g. squared loss);
  the instance partition of splits on the feature parties' features; feature names, bin counts and
  monotone constraints; at prediction time, in the leaf-set mode, per row and tree the leaves the
  feature party's splits allow: hence its decision at every split node some such leaf lies under
  (the nodes on the row's path through its splits), not at the nodes its splits rule out; in the
  per-node mode its decision at every one of its split nodes.
- A feature party also learns each kept tree's shape (which nodes split, into which child ids;
  it sees most of it already in the instance spaces), never its values.
- Ciphertexts are re-randomised before they leave the feature party, so the label party cannot link
  a bin sum to the randomness it used for each row (HE). With OT, the label party's view of a reply
  is a function of the bin sums and its own pads; the OT extension's columns are masked by
  keystreams of seeds it holds only one of, so the choice bits (the bins) stay hidden.

Assumptions: OT: AES as an ideal cipher (fixed-key hash, per-tree pads), CDH in the Ed25519 group
(base OTs); HE: the decisional composite residuosity (Paillier) or p-subgroup (OU) assumption.

Ledger: every one of these disclosures is declared once in :mod:`.disclosures` and recorded on both
sides.

Layout: :mod:`.params` (hyperparameters), :mod:`.messages` (wire messages and ``PROTOCOL``),
:mod:`.disclosures` (the catalogue), :mod:`.label_party` and :mod:`.feature_party` (one role each:
an object that turns received messages into the next ones, and the drivers that move them over a
channel), :mod:`.tree` (the label party's tree growing), :mod:`.split` (split finding),
:mod:`.histogram` (encrypted histograms), :mod:`.shares` (OT histograms), :mod:`.binning` (quantile bins), :mod:`.loss`,
:mod:`.model` (model parts, tree shapes, routing), :mod:`.explain` (per-row contributions),
:mod:`.checks` (what the label party verifies in the replies). Estimators: :mod:`misuan.ml.secureboost`. Step adapters:
:mod:`misuan.node.steps.secureboost` and :mod:`misuan.node.steps.evaluate`.
"""

from misuan.protocols.secureboost.binning import QuantileBinner
from misuan.protocols.secureboost.disclosures import DISCLOSURES
from misuan.protocols.secureboost.feature_party import (
    FeatureParty,
    predict_feature_party,
    train_feature_party,
)
from misuan.protocols.secureboost.label_party import (
    LabelParty,
    explain_label_party,
    predict_label_party,
    train_label_party,
)
from misuan.protocols.secureboost.loss import base_margin
from misuan.protocols.secureboost.messages import (
    PROTOCOL,
    STEP,
    DecisionRequest,
    Decisions,
    HistogramReply,
    LeafSets,
    LevelPlan,
    OtBase,
    OtColumns,
    OtPoints,
    Schema,
    Setup,
    SplitReply,
    SplitRequest,
    TrainEnd,
    TreeStart,
)
from misuan.protocols.secureboost.model import MODEL_VERSION, TrainResult, route
from misuan.protocols.secureboost.params import (
    MAX_BIN_LIMIT,
    MIN_KEY_BITS,
    BoostingParams,
    HistogramCrypto,
    Objective,
    PredictionMode,
    SecureBoostParams,
)

__all__ = [
    "DISCLOSURES", "MAX_BIN_LIMIT", "MIN_KEY_BITS", "MODEL_VERSION", "PROTOCOL", "STEP", "BoostingParams",
    "DecisionRequest", "Decisions", "FeatureParty", "HistogramCrypto", "HistogramReply", "LabelParty", "LeafSets",
    "LevelPlan", "Objective", "OtBase", "OtColumns", "OtPoints", "PredictionMode", "QuantileBinner",
    "SecureBoostParams", "Schema", "Setup", "SplitReply",
    "SplitRequest", "TrainEnd", "TrainResult", "TreeStart", "base_margin", "explain_label_party",
    "predict_feature_party", "predict_label_party", "route", "train_feature_party", "train_label_party",
]
