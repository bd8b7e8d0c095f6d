"""Secure joint statistics: WOE/IV binning of the feature party's features against the label party's labels.

Parties. The *label party* (the bank) holds a 0/1 label per shared customer and the homomorphic key
pair; the *feature party* (the partner) holds numeric features of the same customers. Rows are
aligned beforehand by PSI (both pass their data in the intersection's common order).

Protocol (step names under ``step``, default ``woe``):

1. ``labels`` then ``label_chunk`` x k (label -> feature): the public key and the row count, then one
   ciphertext per row, ``Enc(y_i)``, in chunks of ``LABEL_CHUNK_ROWS`` so the feature party sums a
   chunk while the next is being encrypted. Okamoto-Uchiyama by default, 2048-bit keys; every
   encryption draws its own randomiser, so the ciphertexts are re-randomised by construction before
   they leave the key holder (with precomputed ``zeros``, ``Enc(y_i) = E_{y_i} * Z_i`` with a fresh,
   never reused encryption of zero ``Z_i`` per row: the same distribution). Labels are integers (fixed-point scale 1); the label party checks that
   the largest possible bin sum, ``n``, fits the key's exact plaintext range.
   The feature party refuses keys shorter than ``config.min_key_bits``, a count that differs from its
   own row count, chunks out of order or over size, and ciphertexts outside ``(0, modulus)``.
2. ``bin_sums`` (feature -> label): for every feature, the feature party bins its own column
   (``quantile``/``equal_width``: final bins; ``chimerge``/``tree``: ``n_prebins`` quantile pre-bins),
   merges bins below ``min_bin_size`` rows *before anything is revealed*, and sends per bin the row
   count and ``Enc(sum of y_i over the bin)``, each sum re-randomised. Re-randomising matters: a bin
   sum is a product of ciphertexts the label party made itself, so without fresh randomness it could
   test which of its ciphertexts (which rows) a small bin holds, e.g. a bin of one row *is* that
   row's ciphertext. With it, the sum is a fresh encryption of the count and nothing more. Bin edges
   travel too when ``share_edges`` (default) so the report can show them.
3. The label party decrypts the per-bin positive counts and checks ``0 <= positives <= count``.
   For supervised features it decides merges of adjacent pre-bins (ChiMerge or a best-first entropy
   tree) from the pre-bin aggregates and sends only the decisions (``merges``, label -> feature: the
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

Ledger (both sides): ``encrypted labels`` (ciphertext, ``(n,)``); per feature ``per-bin row count and
positive count of <feature>`` (aggregate, ``(bins, 2)``) and ``bin edges of <feature>`` (plaintext,
only with ``share_edges``); for supervised features ``merge boundaries of <feature>`` (plaintext);
with ``share_iv`` ``IV per feature`` (aggregate).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd

from misuan.crypto.he import PrivateKey, PublicKey, generate_keypair, public_key_from_wire
from misuan.errors import ConfigError, DataError, EncodingOverflowError, MalformedMessageError
from misuan.net import wire
from misuan.net.channel import Channel
from misuan.protocols.binning import (
    MAX_BINS,
    SUPERVISED,
    BinningConfig,
    FeatureBins,
    check_starts,
    feature_columns,
    merge_counts,
    merge_prebins,
    unsupervised_bins,
)
from misuan.protocols.he_batch import (
    BinSumAccumulator,
    ZeroEncryptions,
    available_workers,
    chunk_bounds,
    encrypt_chunks,
)
from misuan.protocols.woe_table import FeatureWoe, WoeResult, check_labels, feature_woe

__all__ = [
    "BinSums",
    "EncryptedLabels",
    "FeaturePartyWoe",
    "IvSummary",
    "LabelChunk",
    "MergeDecisions",
    "woe_iv",
    "woe_iv_feature_party",
    "woe_iv_label_party",
]

STEP = "woe"
LABEL_PARTY = "label_party"
FEATURE_PARTY = "feature_party"
Role = Literal["label_party", "feature_party"]
MAX_FEATURES = 100_000
MAX_NAME = 256
LABEL_CHUNK_ROWS = 8192  # ~2 MB of 2048-bit OU ciphertexts per message
MAX_CHUNK_ROWS = 1 << 20


@wire.message("woe.EncryptedLabels")
@dataclasses.dataclass
class EncryptedLabels:
    config: str  # BinningConfig.fingerprint(): both parties must run the same job
    public_key: dict[str, Any]
    n_rows: int
    n_chunks: int  # LabelChunk messages that follow


@wire.message("woe.LabelChunk")
@dataclasses.dataclass
class LabelChunk:
    index: int  # 0, 1, ... in order
    ciphertexts: np.ndarray  # S{ciphertext_bytes}: Enc(label) of the chunk's rows, in row order


@wire.message("woe.BinSums")
@dataclasses.dataclass
class BinSums:
    features: list[str]
    methods: list[str]
    n_value_bins: list[int]
    missing_bins: list[int]  # index of the bin holding missing values, -1 if none
    counts: list[np.ndarray]  # int64 per feature: rows per bin
    sums: list[np.ndarray]  # S{ciphertext_bytes} per feature: Enc(positives per bin), re-randomised
    cuts: list[np.ndarray]  # float64 per feature, empty unless config.share_edges


@wire.message("woe.MergeDecisions")
@dataclasses.dataclass
class MergeDecisions:
    features: list[str]  # the supervised features, in BinSums order
    starts: list[np.ndarray]  # int64: first pre-bin of each final bin


@wire.message("woe.IvSummary")
@dataclasses.dataclass
class IvSummary:
    features: list[str]
    iv: list[float]


@dataclasses.dataclass(frozen=True)
class FeaturePartyWoe:
    """What the feature party ends with: its final bins per feature (and IVs if the label party shared them)."""

    bins: dict[str, FeatureBins]
    methods: dict[str, str]
    iv: dict[str, float] | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": {
                name: {
                    "method": self.methods[name],
                    "cuts": b.cuts.tolist(),
                    "bins": b.labels(),
                    "missing_bin": b.missing_bin,
                    "iv": None if self.iv is None else self.iv.get(name),
                }
                for name, b in self.bins.items()
            }
        }


# --- entry points --------------------------------------------------------------------------------
def woe_iv(
    chan: Channel,
    role: Role,
    peer: str,
    data: Any,
    *,
    config: BinningConfig | None = None,
    keypair: tuple[PublicKey, PrivateKey] | None = None,
    zeros: ZeroEncryptions | None = None,
    step: str = STEP,
) -> WoeResult | FeaturePartyWoe:
    """Run the WOE/IV protocol as ``role``: ``data`` is the labels (label party) or the features
    (feature party: a DataFrame or a mapping of name to column), rows aligned with the peer's."""
    if role == LABEL_PARTY:
        return woe_iv_label_party(chan, peer, data, config=config, keypair=keypair, zeros=zeros, step=step)
    if role == FEATURE_PARTY:
        if keypair is not None or zeros is not None:
            raise ConfigError("only the label party holds a key pair (and encrypts) in a WOE job")
        return woe_iv_feature_party(chan, peer, data, config=config, step=step)
    raise ConfigError(f"WOE role must be {LABEL_PARTY!r} or {FEATURE_PARTY!r}, not {role!r}")


def woe_iv_label_party(
    chan: Channel,
    peer: str,
    labels: Any,
    *,
    config: BinningConfig | None = None,
    keypair: tuple[PublicKey, PrivateKey] | None = None,
    zeros: ZeroEncryptions | None = None,
    step: str = STEP,
) -> WoeResult:
    """The label party's side: encrypt labels, decrypt per-bin sums, decide merges, compute WOE/IV/KS.

    ``zeros``: encryptions of zero precomputed under ``keypair`` (:meth:`ZeroEncryptions.precompute`,
    at least one per row); the labels are then encrypted with one multiplication each.
    """
    config = config or BinningConfig()
    y = check_labels(labels)
    n = len(y)
    if y.sum() in (0, n):
        raise DataError("the labels contain only one class: WOE/IV need both positives and negatives")
    pk, sk = keypair if keypair is not None else generate_keypair("ou", max(2048, config.min_key_bits))
    if pk.bits < config.min_key_bits:
        raise ConfigError(f"the key has {pk.bits} bits, below min_key_bits={config.min_key_bits}")
    # labels are integers (fixed-point scale 1); a bin's sum is at most n, which must decrypt exactly
    if n.bit_length() > pk.plaintext_bits:
        raise EncodingOverflowError(
            f"{n} rows: a bin's positive count may not fit {pk.plaintext_bits} plaintext bits"
        )

    # chunks of at most LABEL_CHUNK_ROWS, and at least one per worker
    bounds = chunk_bounds(n, min(LABEL_CHUNK_ROWS, -(-n // available_workers(config.workers))))
    header = EncryptedLabels(config.fingerprint(), dict(pk.to_wire()), n, len(bounds))
    chan.send(peer, f"{step}/labels", header)
    if zeros is not None:
        if zeros.pk.to_wire() != pk.to_wire():
            raise ConfigError(
                "the precomputed encryptions of zero are under another key than the key pair given"
            )
        if len(zeros) < n:
            raise ConfigError(
                f"{len(zeros)} precomputed encryptions of zero for {n} rows: precompute at least {n}"
            )
        chunks: Iterator[np.ndarray] = (zeros.encrypt_bits(y[lo:hi]) for lo, hi in bounds)
    else:
        chunks = encrypt_chunks(pk, y, bounds, config.workers)
    for i, arr in enumerate(chunks):
        chan.send(peer, f"{step}/label_chunk", LabelChunk(i, arr))
    chan.disclose(
        step,
        chan.party,
        peer,
        "encrypted labels",
        (n,),
        form="ciphertext",
        scheme=pk.scheme,
        key_bits=pk.bits,
    )

    msg = chan.recv(peer, f"{step}/bin_sums", expect=BinSums)
    received = _check_bin_sums(msg, pk, n, config, peer)
    flat = [c for f in received for c in f.sums]
    positives_flat = np.asarray(sk.decrypt_ints(flat), dtype=object)
    out: list[FeatureWoe] = []
    merges: list[tuple[str, np.ndarray]] = []
    offset = 0
    for f in received:
        k = len(f.counts)
        pos_obj = positives_flat[offset : offset + k]
        offset += k
        if any(int(p) > int(c) for p, c in zip(pos_obj, f.counts, strict=True)):
            raise MalformedMessageError(f"{peer}: a bin of {f.name!r} decrypts to more positives than rows")
        positives = pos_obj.astype(np.int64)
        stage = "pre-bin" if f.method in SUPERVISED else "bin"
        chan.disclose(
            step,
            peer,
            chan.party,
            f"per-{stage} row count and positive count of {f.name}",
            (k, 2),
            form="aggregate",
            min_bin_size=config.min_bin_size,
        )
        if config.share_edges:
            chan.disclose(
                step, peer, chan.party, f"bin edges of {f.name}", f.bins.cuts.shape, form="plaintext"
            )
        bins, counts = f.bins, f.counts
        if f.method in SUPERVISED:
            starts = merge_prebins(f.method, bins, counts, positives, config)
            merges.append((f.name, starts))
            counts, positives = merge_counts(bins, starts, counts), merge_counts(bins, starts, positives)
            bins = bins.merged(starts)
        out.append(
            feature_woe(f.name, f.method, bins, counts, positives, config.smoothing, config.share_edges)
        )
    if merges:
        chan.send(peer, f"{step}/merges", MergeDecisions([m[0] for m in merges], [m[1] for m in merges]))
        for name, starts in merges:
            chan.disclose(
                step, chan.party, peer, f"merge boundaries of {name}", starts.shape, form="plaintext"
            )
    if config.share_iv:
        chan.send(peer, f"{step}/iv", IvSummary([f.feature for f in out], [f.iv for f in out]))
        chan.disclose(step, chan.party, peer, "IV per feature", (len(out),), form="aggregate")
    return WoeResult(features=out, n_rows=n, n_positives=int(y.sum()))


def woe_iv_feature_party(
    chan: Channel,
    peer: str,
    features: pd.DataFrame | Mapping[str, Any],
    *,
    config: BinningConfig | None = None,
    step: str = STEP,
) -> FeaturePartyWoe:
    """The feature party's side: bin own features, sum encrypted labels per bin, apply merge decisions."""
    config = config or BinningConfig()
    cols = feature_columns(features)
    if not cols:
        raise DataError("the feature party has no feature columns to bin")
    n = len(next(iter(cols.values())))
    if n == 0:
        raise DataError("the feature party's data has no rows")
    names = list(cols)
    methods = [config.method_for(name) for name in names]
    # bin first: none of this depends on the peer, and it fails early on bad input
    binned = [unsupervised_bins(cols[name], m, config) for name, m in zip(names, methods, strict=True)]
    codes = [b.assign(cols[name]) for name, b in zip(names, binned, strict=True)]

    msg = chan.recv(peer, f"{step}/labels", expect=EncryptedLabels)
    if msg.config != config.fingerprint():
        raise ConfigError(
            f"{peer} runs WOE with config {msg.config}, this party with {config.fingerprint()}: give both the same job spec"
        )
    pk = public_key_from_wire(msg.public_key)
    if pk.bits < config.min_key_bits:
        raise MalformedMessageError(
            f"{peer} sent a {pk.bits}-bit key; this party requires at least {config.min_key_bits} bits"
        )
    if msg.n_rows != n or not 1 <= msg.n_chunks <= n:
        raise MalformedMessageError(
            f"{peer} announces {msg.n_rows} encrypted labels in {msg.n_chunks} chunks for {n} rows: "
            "align both parties' rows by PSI first"
        )
    acc = BinSumAccumulator(pk, codes, [b.n_bins for b in binned], config.workers)
    try:
        lo = 0
        for i in range(msg.n_chunks):
            chunk = chan.recv(peer, f"{step}/label_chunk", expect=LabelChunk)
            arr = chunk.ciphertexts
            if chunk.index != i or not isinstance(arr, np.ndarray) or arr.ndim != 1:
                raise MalformedMessageError(
                    f"{peer} sent label chunk {chunk.index} (expected {i}) or not a 1-d array"
                )
            if not 1 <= arr.shape[0] <= min(MAX_CHUNK_ROWS, n - lo):
                raise MalformedMessageError(
                    f"{peer} sent a label chunk of {arr.shape[0]} rows at row {lo} of {n}"
                )
            acc.add(lo, pk.from_array(arr), arr)  # from_array checks dtype, size and 0 < c < modulus
            lo += arr.shape[0]
            if lo == n and i < msg.n_chunks - 1:
                raise MalformedMessageError(
                    f"{peer} announced {msg.n_chunks} label chunks but sent all rows in {i + 1}"
                )
        if lo != n:
            raise MalformedMessageError(f"{peer} sent {lo} encrypted labels for {n} rows")
        sums = acc.result()
    finally:
        acc.close()
    chan.disclose(
        step,
        peer,
        chan.party,
        "encrypted labels",
        (n,),
        form="ciphertext",
        scheme=pk.scheme,
        key_bits=pk.bits,
    )
    counts = [np.bincount(c, minlength=b.n_bins).astype(np.int64) for c, b in zip(codes, binned, strict=True)]
    _check_small_cells(names, counts, n, config.min_bin_size)
    chan.send(
        peer,
        f"{step}/bin_sums",
        BinSums(
            features=names,
            methods=methods,
            n_value_bins=[b.n_value_bins for b in binned],
            missing_bins=[-1 if b.missing_bin is None else b.missing_bin for b in binned],
            counts=counts,
            sums=[pk.to_array(pk.rerandomize_many(s)) for s in sums],
            cuts=[b.cuts if config.share_edges else np.empty(0, np.float64) for b in binned],
        ),
    )
    for name, m, c, b in zip(names, methods, counts, binned, strict=True):
        stage = "pre-bin" if m in SUPERVISED else "bin"
        chan.disclose(
            step,
            chan.party,
            peer,
            f"per-{stage} row count and positive count of {name}",
            (len(c), 2),
            form="aggregate",
            min_bin_size=config.min_bin_size,
        )
        if config.share_edges:
            chan.disclose(step, chan.party, peer, f"bin edges of {name}", b.cuts.shape, form="plaintext")

    final = dict(zip(names, binned, strict=True))
    supervised = [name for name, m in zip(names, methods, strict=True) if m in SUPERVISED]
    if supervised:
        dec = chan.recv(peer, f"{step}/merges", expect=MergeDecisions)
        if dec.features != supervised or len(dec.starts) != len(supervised):
            raise MalformedMessageError(
                f"{peer} sent merge decisions for {dec.features[:5]}..., expected {supervised[:5]}..."
            )
        for name, starts in zip(supervised, dec.starts, strict=True):
            try:
                final[name] = final[name].merged(
                    check_starts(starts, final[name].n_value_bins, config.n_bins)
                )
            except ValueError as exc:
                raise MalformedMessageError(f"{peer} sent bad merge decisions for {name!r}: {exc}") from exc
            chan.disclose(
                step, peer, chan.party, f"merge boundaries of {name}", np.shape(starts), form="plaintext"
            )
    iv: dict[str, float] | None = None
    if config.share_iv:
        summary = chan.recv(peer, f"{step}/iv", expect=IvSummary)
        if summary.features != names or len(summary.iv) != len(names):
            raise MalformedMessageError(f"{peer} sent IVs for other features than were binned")
        if not all(isinstance(v, float) and (v >= 0 or math.isinf(v)) for v in summary.iv):
            raise MalformedMessageError(f"{peer} sent an IV that is not a non-negative number")
        iv = dict(zip(names, summary.iv, strict=True))
        chan.disclose(step, peer, chan.party, "IV per feature", (len(names),), form="aggregate")
    return FeaturePartyWoe(bins=final, methods=dict(zip(names, methods, strict=True)), iv=iv)


# --- checks --------------------------------------------------------------------------------------
def _check_small_cells(names: list[str], counts: list[np.ndarray], n: int, min_size: int) -> None:
    """Last guard before anything leaves: every bin holds min_size rows or is the only bin."""
    for name, c in zip(names, counts, strict=True):
        if c.sum() != n or (len(c) > 1 and int(c.min()) < min_size):
            raise DataError(
                f"binning of {name!r} breaks the small-cell rule (bins {c.tolist()}); this is a bug"
            )


@dataclasses.dataclass
class _ReceivedFeature:
    name: str
    method: str
    bins: FeatureBins  # cuts are NaN when edges were not shared
    counts: np.ndarray
    sums: list[Any]


def _check_bin_sums(
    msg: BinSums, pk: PublicKey, n: int, config: BinningConfig, peer: str
) -> list[_ReceivedFeature]:
    """Validate the feature party's bin sums completely before decrypting anything."""
    k = len(msg.features)
    lengths = {
        len(msg.methods),
        len(msg.n_value_bins),
        len(msg.missing_bins),
        len(msg.counts),
        len(msg.sums),
        len(msg.cuts),
    }
    if not 1 <= k <= MAX_FEATURES or lengths != {k}:
        raise MalformedMessageError(
            f"{peer} sent bin sums for {k} features with mismatched field lengths {sorted(lengths)}"
        )
    if len(set(msg.features)) != k or not all(0 < len(f) <= MAX_NAME for f in msg.features):
        raise MalformedMessageError(f"{peer} sent duplicate, empty or over-long feature names")
    out = []
    for j, name in enumerate(msg.features):
        method = msg.methods[j]
        if method != config.method_for(name):
            raise MalformedMessageError(
                f"{peer} binned {name!r} with {method!r}, the job says {config.method_for(name)!r}"
            )
        limit = config.n_prebins if method in SUPERVISED else config.n_bins
        n_value, missing = msg.n_value_bins[j], msg.missing_bins[j]
        if not 0 <= n_value <= min(limit, MAX_BINS) or not -1 <= missing <= n_value:
            raise MalformedMessageError(
                f"{peer}: {name!r} has {n_value} value bins, missing bin {missing} (limit {limit})"
            )
        bins = FeatureBins(np.full(max(n_value - 1, 0), np.nan), n_value, None if missing < 0 else missing)
        n_bins = bins.n_bins
        counts = msg.counts[j]
        if (
            not isinstance(counts, np.ndarray)
            or counts.dtype != np.int64
            or counts.shape != (n_bins,)
            or n_bins == 0
        ):
            raise MalformedMessageError(f"{peer}: counts of {name!r} must be int64 of shape ({n_bins},)")
        if int(counts.sum()) != n or int(counts.min()) < (config.min_bin_size if n_bins > 1 else 1):
            raise MalformedMessageError(
                f"{peer}: counts of {name!r} do not add up to {n} rows or break min_bin_size={config.min_bin_size}"
            )
        sums = msg.sums[j]
        if not isinstance(sums, np.ndarray) or sums.shape != (n_bins,):
            raise MalformedMessageError(f"{peer}: bin sums of {name!r} must have shape ({n_bins},)")
        cts = pk.from_array(sums)
        cuts = msg.cuts[j]
        if config.share_edges:
            want = (max(n_value - 1, 0),)
            if not isinstance(cuts, np.ndarray) or cuts.dtype != np.float64 or cuts.shape != want:
                raise MalformedMessageError(f"{peer}: edges of {name!r} must be float64 of shape {want}")
            if not np.all(np.isfinite(cuts)) or np.any(np.diff(cuts) <= 0):
                raise MalformedMessageError(
                    f"{peer}: edges of {name!r} must be finite and strictly increasing"
                )
            bins = FeatureBins(cuts.copy(), n_value, bins.missing_bin)
        elif not isinstance(cuts, np.ndarray) or cuts.size:
            raise MalformedMessageError(f"{peer} sent edges of {name!r} although the job does not share them")
        out.append(_ReceivedFeature(name, method, bins, counts.copy(), cts))
    return out
