"""Secure WOE/IV: binning of the feature party's features against the label party's labels.

Parties. The *label party* (the bank) holds a 0/1 label per shared customer and the homomorphic key
pair; the *feature party* (the partner) holds numeric features of the same customers. Rows are
aligned beforehand by PSI (both pass their data in the intersection's common order).

Protocol (step names under ``step``, default ``woe``):

1. ``labels`` then ``label_chunk`` x k (label -> feature): the public key and the row count, then one
   ciphertext per row, ``Enc(y_i)``, in chunks of ``LABEL_CHUNK_ROWS`` so the feature party sums a
   chunk while the next is being encrypted. Okamoto-Uchiyama by default, 2048-bit keys; every
   encryption draws its own randomiser, so the ciphertexts are re-randomised by construction before
   they leave the key holder (with precomputed ``zeros``, ``Enc(y_i) = E_{y_i} * Z_i`` with a fresh,
   never reused encryption of zero ``Z_i`` per row: the same distribution). Labels are integers
   (fixed-point scale 1); the label party checks that the largest possible bin sum, ``n``, fits the
   key's exact plaintext range. The feature party refuses keys shorter than ``params.min_key_bits``,
   a count that differs from its own row count, chunks out of order or over size, and ciphertexts
   outside ``(0, modulus)``.
2. ``bin_sums`` (feature -> label): for every feature, the feature party bins its own column
   (``quantile``/``equal_width``: final bins; ``chimerge``/``tree``/``monotonic``: ``n_prebins`` quantile pre-bins),
   merges bins below ``min_bin_size`` rows *before anything is revealed*, and sends per bin the row
   count and ``Enc(sum of y_i over the bin)``, each sum re-randomised. Re-randomising matters: a bin
   sum is a product of ciphertexts the label party made itself, so without fresh randomness it could
   test which of its ciphertexts (which rows) a small bin holds, e.g. a bin of one row *is* that
   row's ciphertext. With it, the sum is a fresh encryption of the count and nothing more. Bin edges
   travel too when ``share_edges`` (default) so the report can show them.
3. The label party decrypts the per-bin positive counts and checks ``0 <= positives <= count``.
   For supervised features it decides merges of adjacent pre-bins (ChiMerge, a best-first entropy
   tree, or monotone: adjacent pre-bins pooled until the event rate only rises or only falls, as
   scorecards require) from the pre-bin aggregates and sends only the decisions (``merges``, label -> feature: the
   index of the first pre-bin of each final bin); both sides then hold the same final bins. It
   computes WOE, IV, KS and monotonicity per feature. With ``share_iv`` it sends each feature's IV
   back (``iv``, label -> feature).

Supervised binning, the choice made. ChiMerge and tree binning need label information per candidate
bin. Either the feature party would need per-pre-bin positive counts (it must not see them), or the
label party decides. Here the label party decides, from pre-bin aggregates it is shown anyway under
the small-cell rule, and returns only the merge decisions. So the label party sees pre-bin
aggregates (more detail than the final table; the ledger says ``per-pre-bin``), and the feature
party learns the merge boundaries, a coarse function of the labels (the ledger records them).
A missing bin of its own (one with at least ``min_bin_size`` rows) is never merged by these decisions.

Security model: semi-honest (both follow the protocol, each studies what it receives); the homomorphic
scheme is IND-CPA (Okamoto-Uchiyama: p-subgroup assumption; Paillier: DCR).

Leakage, exactly:

- The feature party learns the number of rows (known from PSI) and ciphertexts it cannot read; for
  supervised methods, the merge boundaries (which adjacent pre-bins form a final bin), a function of
  the labels; with ``share_iv``, each feature's IV.
- The label party learns per feature and per revealed bin the row count and the positive count,
  each bin holding at least ``min_bin_size`` rows or being the only bin (the whole intersection); the
  number of bins and which holds missing values; the bin edges when ``share_edges``; the feature
  names and the binning methods. For supervised methods the revealed bins are the *pre-bins* (finer
  aggregates than the final table shows). Repeated jobs with different binnings of the same feature
  can reveal differences of bins (small cells) in the ledger's history; the ledger records every
  such disclosure so an auditor can see it.

The catalogue (:mod:`.disclosures`, both sides record it): ``encrypted labels`` (ciphertext,
``(n,)``); per feature ``per-bin row count and positive count of a feature`` or ``per-pre-bin ...``
(aggregate, ``(bins, 2)``) and ``bin edges of a feature`` (plaintext, only with ``share_edges``);
for supervised features ``merge boundaries of a feature`` (plaintext); with ``share_iv`` ``IV per
feature`` (aggregate). Entries about one feature name it in their detail (``feature``).

Layout: :mod:`.params` (:class:`WoeParams`), :mod:`.messages` (wire messages and ``PROTOCOL``),
:mod:`.disclosures` (the catalogue), :mod:`.label_party` and :mod:`.feature_party` (each role an
object that turns received messages into the next ones, and the driver that moves them over a
channel), :mod:`.roles` (:func:`woe_iv`, either role by name); local work: :mod:`.binning`,
:mod:`.table` (WOE/IV/KS and the result types), :mod:`.he_batch` (batched homomorphic work).
Step adapter: :mod:`misuan.node.steps.woe`; plaintext twin: :mod:`misuan.ml.woe`.
"""

from misuan.protocols.woe.binning import FeatureBins
from misuan.protocols.woe.disclosures import DISCLOSURES
from misuan.protocols.woe.feature_party import WoeFeatureParty, woe_iv_feature_party
from misuan.protocols.woe.he_batch import ZeroEncryptions
from misuan.protocols.woe.label_party import WoeLabelParty, woe_iv_label_party
from misuan.protocols.woe.messages import (
    FEATURE_PARTY,
    LABEL_PARTY,
    PROTOCOL,
    STEP,
    BinSums,
    EncryptedLabels,
    IvSummary,
    LabelChunk,
    MergeDecisions,
    Role,
)
from misuan.protocols.woe.params import METHODS, SUPERVISED, Method, WoeParams
from misuan.protocols.woe.roles import woe_iv
from misuan.protocols.woe.table import BinStats, FeaturePartyWoe, FeatureWoe, WoeResult

__all__ = [
    "DISCLOSURES",
    "FEATURE_PARTY",
    "LABEL_PARTY",
    "METHODS",
    "PROTOCOL",
    "STEP",
    "SUPERVISED",
    "BinStats",
    "BinSums",
    "EncryptedLabels",
    "FeatureBins",
    "FeaturePartyWoe",
    "FeatureWoe",
    "IvSummary",
    "LabelChunk",
    "MergeDecisions",
    "Method",
    "Role",
    "WoeFeatureParty",
    "WoeLabelParty",
    "WoeParams",
    "WoeResult",
    "ZeroEncryptions",
    "woe_iv",
    "woe_iv_feature_party",
    "woe_iv_label_party",
]
