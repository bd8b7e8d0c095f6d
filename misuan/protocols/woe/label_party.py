"""The label party of WOE/IV: :class:`WoeLabelParty` (pure message logic) and :func:`woe_iv_label_party` (its driver).

The label party holds the labels and the key pair: it encrypts the labels, decrypts the feature
party's per-bin sums after checking the whole message, decides the merges of supervised pre-bins
and computes WOE, IV, KS and monotonicity per feature.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np

from misuan.crypto.he import PrivateKey, PublicKey, generate_keypair
from misuan.errors import (
    ConfigError,
    DataError,
    EncodingOverflowError,
    InconsistentPeerError,
    MalformedMessageError,
)
from misuan.net.channel import Channel
from misuan.protocols.woe.binning import FeatureBins, merge_counts, merge_prebins
from misuan.protocols.woe.disclosures import (
    ENCRYPTED_LABELS,
    INCONSISTENT_BIN_SUMS,
    IV_PER_FEATURE,
    record_bin_sums,
    record_merges,
)
from misuan.protocols.woe.he_batch import ZeroEncryptions, available_workers, chunk_bounds, encrypt_chunks
from misuan.protocols.woe.messages import (
    LABEL_CHUNK_ROWS,
    MAX_FEATURES,
    MAX_NAME,
    STEP,
    BinSums,
    EncryptedLabels,
    IvSummary,
    LabelChunk,
    MergeDecisions,
)
from misuan.protocols.woe.params import MAX_BINS, SUPERVISED, WoeParams
from misuan.protocols.woe.table import FeatureWoe, WoeResult, check_labels, feature_woe

__all__ = ["WoeLabelParty", "woe_iv_label_party"]


class WoeLabelParty:
    """The label party's state: encrypted labels out; bin sums in, merge decisions, IVs and the result out. No I/O.

    ``keypair`` defaults to a fresh Okamoto-Uchiyama pair of ``max(2048, min_key_bits)`` bits.
    ``zeros``: encryptions of zero precomputed under ``keypair`` (:meth:`ZeroEncryptions.precompute`,
    at least one per row); the labels are then encrypted with one multiplication each.
    """

    def __init__(
        self,
        labels: Any,
        params: WoeParams | None = None,
        keypair: tuple[PublicKey, PrivateKey] | None = None,
        zeros: ZeroEncryptions | None = None,
        peer: str = "the feature party",
    ) -> None:
        self.params = params = params or WoeParams()
        self.peer = peer
        self.labels = y = check_labels(labels)
        self.n = n = len(y)
        if y.sum() in (0, n):
            raise DataError("the labels contain only one class: WOE/IV need both positives and negatives")
        self.pk, self._sk = keypair if keypair is not None else generate_keypair("ou", max(2048, params.min_key_bits))
        if self.pk.bits < params.min_key_bits:
            raise ConfigError(f"the key has {self.pk.bits} bits, below min_key_bits={params.min_key_bits}")
        # labels are integers (fixed-point scale 1); a bin's sum is at most n, which must decrypt exactly
        if n.bit_length() > self.pk.plaintext_bits:
            raise EncodingOverflowError(
                f"{n} rows: a bin's positive count may not fit {self.pk.plaintext_bits} plaintext bits"
            )
        if zeros is not None and zeros.pk.to_wire() != self.pk.to_wire():
            raise ConfigError("the precomputed encryptions of zero are under another key than the key pair given")
        if zeros is not None and len(zeros) < n:
            raise ConfigError(f"{len(zeros)} precomputed encryptions of zero for {n} rows: precompute at least {n}")
        self._zeros = zeros
        # chunks of at most LABEL_CHUNK_ROWS, and at least one per worker
        self._bounds = chunk_bounds(n, min(LABEL_CHUNK_ROWS, -(-n // available_workers(params.workers))))
        self._features: list[FeatureWoe] = []

    def encrypted_labels(self) -> EncryptedLabels:
        """The first message: the job's fingerprint, the public key, the row count and the chunk count."""
        return EncryptedLabels(self.params.fingerprint(), dict(self.pk.to_wire()), self.n, len(self._bounds))

    def label_chunks(self) -> Iterator[LabelChunk]:
        """``Enc(y_i)`` of every row, chunk by chunk (encrypted as they are asked for)."""
        if self._zeros is not None:
            zeros = self._zeros
            chunks: Iterator[np.ndarray] = (zeros.encrypt_bits(self.labels[lo:hi]) for lo, hi in self._bounds)
        else:
            chunks = encrypt_chunks(self.pk, self.labels, self._bounds, self.params.workers)
        for i, arr in enumerate(chunks):
            yield LabelChunk(i, arr)

    def receive_bin_sums(self, msg: BinSums) -> MergeDecisions | None:
        """Check and decrypt the bin sums, merge supervised pre-bins; the merge decisions to send, if any.

        Besides the message's form, it checks what this party knows itself: every feature's bins
        hold all ``n`` rows and, decrypted, exactly its own number of positives, and no bin more
        positives than rows (:class:`InconsistentPeerError` naming the peer, the check and the
        feature). Cheap checks against a peer's bugs and crude forgeries, not malicious security.
        """
        received = _check_bin_sums(msg, self.pk, self.n, self.params, self.peer)
        flat = [c for f in received for c in f.sums]
        positives_flat = np.asarray(self._sk.decrypt_ints(flat), dtype=object)
        merges: list[tuple[str, np.ndarray]] = []
        offset = 0
        own_positives = int(self.labels.sum())
        for f in received:
            pos_obj = positives_flat[offset : offset + len(f.counts)]
            offset += len(f.counts)
            _check_positives(f, pos_obj, own_positives, self.peer)
            positives = pos_obj.astype(np.int64)
            bins, counts = f.bins, f.counts
            if f.method in SUPERVISED:
                starts = merge_prebins(f.method, bins, counts, positives, self.params)
                merges.append((f.name, starts))
                counts, positives = merge_counts(bins, starts, counts), merge_counts(bins, starts, positives)
                bins = bins.merged(starts)
            p = self.params
            self._features.append(feature_woe(f.name, f.method, bins, counts, positives, p.smoothing, p.share_edges))
        if not merges:
            return None
        return MergeDecisions([m[0] for m in merges], [m[1] for m in merges])

    def iv_summary(self) -> IvSummary | None:
        """Each feature's IV for the feature party, when the job shares them."""
        if not self.params.share_iv:
            return None
        return IvSummary([f.feature for f in self._features], [f.iv for f in self._features])

    def result(self) -> WoeResult:
        return WoeResult(features=list(self._features), n_rows=self.n, n_positives=int(self.labels.sum()))


def woe_iv_label_party(
    chan: Channel,
    peer: str,
    labels: Any,
    *,
    params: WoeParams | None = None,
    keypair: tuple[PublicKey, PrivateKey] | None = None,
    zeros: ZeroEncryptions | None = None,
    step: str = STEP,
) -> WoeResult:
    """The label party's side: encrypt labels, decrypt per-bin sums, decide merges, compute WOE/IV/KS."""
    me = WoeLabelParty(labels, params, keypair, zeros, peer)
    header = me.encrypted_labels()
    chan.send(peer, f"{step}/labels", header)
    for chunk in me.label_chunks():
        chan.send(peer, f"{step}/label_chunk", chunk)
    chan.disclose(step, ENCRYPTED_LABELS, chan.party, peer, (me.n,), scheme=me.pk.scheme, key_bits=me.pk.bits)

    msg = chan.recv(peer, f"{step}/bin_sums", expect=BinSums)
    try:
        merges = me.receive_bin_sums(msg)
    except InconsistentPeerError as exc:
        # the ledger keeps which check the peer's values failed before the job stops
        chan.disclose(step, INCONSISTENT_BIN_SUMS, peer, chan.party, (), check=exc.check, feature=exc.subject)
        raise
    record_bin_sums(chan, step, msg, peer, chan.party, me.params)
    if merges is not None:
        chan.send(peer, f"{step}/merges", merges)
        record_merges(chan, step, merges, chan.party, peer)
    iv = me.iv_summary()
    if iv is not None:
        chan.send(peer, f"{step}/iv", iv)
        chan.disclose(step, IV_PER_FEATURE, chan.party, peer, (len(iv.features),))
    return me.result()


# --- checks --------------------------------------------------------------------------------------
def _check_positives(f: _ReceivedFeature, positives: np.ndarray, own_positives: int, peer: str) -> None:
    """The decrypted positives of feature ``f`` against the bins' row counts and this party's labels."""
    if any(int(p) > int(c) for p, c in zip(positives, f.counts, strict=True)):
        raise InconsistentPeerError(
            f"{peer}'s bin sums of {f.name!r} fail the check 'positives per bin': a bin decrypts to more "
            "positives than it has rows", peer=peer, check="positives per bin", subject=f.name,
        )
    total = int(sum(int(p) for p in positives))
    if total != own_positives:
        # every aligned row is in exactly one bin, so the total is this party's own positive count;
        # an all-positive forgery lands here, not in "the labels contain only one class"
        raise InconsistentPeerError(
            f"{peer}'s bin sums of {f.name!r} fail the check 'positives total': they add up to {total} "
            "positives, not the number of positives among this party's labels for the same rows",
            peer=peer, check="positives total", subject=f.name,
        )


@dataclasses.dataclass
class _ReceivedFeature:
    name: str
    method: str
    bins: FeatureBins  # cuts are NaN when edges were not shared
    counts: np.ndarray
    sums: list[Any]


def _check_bin_sums(msg: BinSums, pk: PublicKey, n: int, params: WoeParams, peer: str) -> list[_ReceivedFeature]:
    """Validate the feature party's bin sums completely before decrypting anything."""
    k = len(msg.features)
    fields = (msg.methods, msg.n_value_bins, msg.missing_bins, msg.counts, msg.sums, msg.cuts)
    lengths = {len(f) for f in fields}
    if not 1 <= k <= MAX_FEATURES or lengths != {k}:
        raise MalformedMessageError(
            f"{peer} sent bin sums for {k} features with mismatched field lengths {sorted(lengths)}"
        )
    if len(set(msg.features)) != k or not all(0 < len(f) <= MAX_NAME for f in msg.features):
        raise MalformedMessageError(f"{peer} sent duplicate, empty or over-long feature names")
    return [_check_feature(msg, j, pk, n, params, peer) for j in range(k)]


def _check_feature(msg: BinSums, j: int, pk: PublicKey, n: int, params: WoeParams, peer: str) -> _ReceivedFeature:
    """Feature ``j`` of ``msg``: its method, bin layout, counts (small-cell rule), ciphertexts and edges."""
    name, method = msg.features[j], msg.methods[j]
    if method != params.method_for(name):
        raise MalformedMessageError(
            f"{peer} binned {name!r} with {method!r}, the job says {params.method_for(name)!r}"
        )
    limit = params.n_prebins if method in SUPERVISED else params.n_bins
    n_value, missing = msg.n_value_bins[j], msg.missing_bins[j]
    if not 0 <= n_value <= min(limit, MAX_BINS) or not -1 <= missing <= n_value:
        raise MalformedMessageError(
            f"{peer}: {name!r} has {n_value} value bins, missing bin {missing} (limit {limit})"
        )
    bins = FeatureBins(np.full(max(n_value - 1, 0), np.nan), n_value, None if missing < 0 else missing)
    n_bins = bins.n_bins
    counts = msg.counts[j]
    if not isinstance(counts, np.ndarray) or counts.dtype != np.int64 or counts.shape != (n_bins,) or n_bins == 0:
        raise MalformedMessageError(f"{peer}: counts of {name!r} must be int64 of shape ({n_bins},)")
    if int(counts.sum()) != n:
        raise InconsistentPeerError(
            f"{peer}'s bin sums of {name!r} fail the check 'row count': their counts add up to "
            f"{int(counts.sum())} rows, not the {n} aligned rows", peer=peer, check="row count", subject=name,
        )
    if int(counts.min()) < (params.min_bin_size if n_bins > 1 else 1):
        raise MalformedMessageError(f"{peer}: counts of {name!r} break min_bin_size={params.min_bin_size}")
    sums = msg.sums[j]
    if not isinstance(sums, np.ndarray) or sums.shape != (n_bins,):
        raise MalformedMessageError(f"{peer}: bin sums of {name!r} must have shape ({n_bins},)")
    cts = pk.from_array(sums)
    cuts = msg.cuts[j]
    if params.share_edges:
        want = (max(n_value - 1, 0),)
        if not isinstance(cuts, np.ndarray) or cuts.dtype != np.float64 or cuts.shape != want:
            raise MalformedMessageError(f"{peer}: edges of {name!r} must be float64 of shape {want}")
        if not np.all(np.isfinite(cuts)) or np.any(np.diff(cuts) <= 0):
            raise MalformedMessageError(f"{peer}: edges of {name!r} must be finite and strictly increasing")
        bins = FeatureBins(cuts.copy(), n_value, bins.missing_bin)
    elif not isinstance(cuts, np.ndarray) or cuts.size:
        raise MalformedMessageError(f"{peer} sent edges of {name!r} although the job does not share them")
    return _ReceivedFeature(name, method, bins, counts.copy(), cts)
