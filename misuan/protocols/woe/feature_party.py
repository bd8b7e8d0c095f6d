"""The feature party of WOE/IV: :class:`WoeFeatureParty` (pure message logic) and :func:`woe_iv_feature_party` (its driver).

The feature party holds numeric features: it bins its own columns, sums the label party's encrypted
labels per bin (never seeing a label), re-randomises each sum, and applies the merge decisions the
label party returns for supervised features.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from misuan.crypto.he import PublicKey, public_key_from_wire
from misuan.errors import ConfigError, DataError, MalformedMessageError
from misuan.net.channel import Channel
from misuan.protocols.woe.binning import FeatureBins, check_starts, iter_float_columns, unsupervised_bins
from misuan.protocols.woe.disclosures import ENCRYPTED_LABELS, IV_PER_FEATURE, record_bin_sums, record_merges
from misuan.protocols.woe.he_batch import BinSumAccumulator
from misuan.protocols.woe.messages import (
    MAX_CHUNK_ROWS,
    STEP,
    BinSums,
    EncryptedLabels,
    IvSummary,
    LabelChunk,
    MergeDecisions,
)
from misuan.protocols.woe.params import SUPERVISED, WoeParams
from misuan.protocols.woe.table import FeaturePartyWoe

__all__ = ["WoeFeatureParty", "woe_iv_feature_party"]

_M = TypeVar("_M")


class WoeFeatureParty:
    """The feature party's state: its bins; encrypted labels in, bin sums out; merges and IVs in. No I/O.

    Binning happens in the constructor: none of it depends on the peer, and it fails early on bad input.
    """

    def __init__(
        self, features: pd.DataFrame | Mapping[str, Any], params: WoeParams | None = None, peer: str = "the label party"
    ) -> None:
        self.params = params = params or WoeParams()
        self.peer = peer
        # a column at a time: what stays is each feature's bins and its codes (2 bytes a row), so a
        # streamed dataset's columns (a lazy mapping) are never all in memory at once
        self.names: list[str] = []
        self.methods: list[str] = []
        self.bins: dict[str, FeatureBins] = {}
        self._codes: list[np.ndarray] = []
        for name, values in iter_float_columns(features):
            method = params.method_for(name)
            self.bins[name] = bins = unsupervised_bins(values, method, params)
            self.names.append(name)
            self.methods.append(method)
            self._codes.append(bins.assign(values).astype(np.int16))  # at most MAX_BINS pre-bins
        if not self.names:
            raise DataError("the feature party has no feature columns to bin")
        self.n = len(self._codes[0])
        if self.n == 0:
            raise DataError("the feature party's data has no rows")
        self.supervised = [name for name, m in zip(self.names, self.methods, strict=True) if m in SUPERVISED]
        self.iv: dict[str, float] | None = None
        self._announced: tuple[PublicKey, int] | None = None  # the label party's key and chunk count

    def accept_labels(self, msg: EncryptedLabels) -> PublicKey:
        """Check the label party's first message (same job, a strong enough key, one label per row); its key."""
        if msg.params_fingerprint != self.params.fingerprint():
            raise ConfigError(
                f"{self.peer} runs WOE with parameters {msg.params_fingerprint}, this party with {self.params.fingerprint()}: "
                "give both the same job spec"
            )
        pk = public_key_from_wire(msg.public_key)
        if pk.bits < self.params.min_key_bits:
            raise MalformedMessageError(
                f"{self.peer} sent a {pk.bits}-bit key; this party requires at least {self.params.min_key_bits} bits"
            )
        if msg.n_rows != self.n or not 1 <= msg.n_chunks <= self.n:
            raise MalformedMessageError(
                f"{self.peer} announces {msg.n_rows} encrypted labels in {msg.n_chunks} chunks for {self.n} rows: "
                "align both parties' rows by PSI first"
            )
        self._announced = (pk, msg.n_chunks)
        return pk

    def bin_sums(self, chunks: Iterable[LabelChunk]) -> BinSums:
        """Sum the encrypted labels of ``chunks`` into each bin (reads as many chunks as were announced)."""
        if self._announced is None:
            raise RuntimeError("accept_labels() comes before bin_sums()")
        pk, n_chunks = self._announced
        binned = [self.bins[name] for name in self.names]
        acc = BinSumAccumulator(pk, self._codes, [b.n_bins for b in binned], self.params.workers)
        try:
            lo = 0
            for i, chunk in zip(range(n_chunks), chunks, strict=False):  # reads no chunk beyond the announced count
                arr = self._check_chunk(chunk, i, lo)
                acc.add(lo, pk.from_array(arr), arr)  # from_array checks dtype, size and 0 < c < modulus
                lo += arr.shape[0]
                if lo == self.n and i < n_chunks - 1:
                    raise MalformedMessageError(
                        f"{self.peer} announced {n_chunks} label chunks but sent all rows in {i + 1}"
                    )
            if lo != self.n:
                raise MalformedMessageError(f"{self.peer} sent {lo} encrypted labels for {self.n} rows")
            sums = acc.result()
        finally:
            acc.close()
        counts = [np.bincount(c, minlength=b.n_bins).astype(np.int64) for c, b in zip(self._codes, binned, strict=True)]
        _check_small_cells(self.names, counts, self.n, self.params.min_bin_size)
        return BinSums(
            features=list(self.names),
            methods=list(self.methods),
            n_value_bins=[b.n_value_bins for b in binned],
            missing_bins=[-1 if b.missing_bin is None else b.missing_bin for b in binned],
            counts=counts,
            sums=[pk.to_array(pk.rerandomize_many(s)) for s in sums],
            cuts=[b.cuts if self.params.share_edges else np.empty(0, np.float64) for b in binned],
        )

    def _check_chunk(self, chunk: LabelChunk, i: int, lo: int) -> np.ndarray:
        arr = chunk.ciphertexts
        if chunk.index != i or not isinstance(arr, np.ndarray) or arr.ndim != 1:
            raise MalformedMessageError(
                f"{self.peer} sent label chunk {chunk.index} (expected {i}) or not a 1-d array"
            )
        if not 1 <= arr.shape[0] <= min(MAX_CHUNK_ROWS, self.n - lo):
            raise MalformedMessageError(
                f"{self.peer} sent a label chunk of {arr.shape[0]} rows at row {lo} of {self.n}"
            )
        return arr

    def apply_merges(self, dec: MergeDecisions) -> None:
        """Merge the pre-bins of each supervised feature as the label party decided."""
        if dec.features != self.supervised or len(dec.starts) != len(self.supervised):
            raise MalformedMessageError(
                f"{self.peer} sent merge decisions for {dec.features[:5]}..., expected {self.supervised[:5]}..."
            )
        for name, starts in zip(self.supervised, dec.starts, strict=True):
            bins = self.bins[name]
            try:
                self.bins[name] = bins.merged(check_starts(starts, bins.n_value_bins, self.params.n_bins))
            except ValueError as exc:
                raise MalformedMessageError(f"{self.peer} sent bad merge decisions for {name!r}: {exc}") from exc

    def receive_iv(self, summary: IvSummary) -> None:
        if summary.features != self.names or len(summary.iv) != len(self.names):
            raise MalformedMessageError(f"{self.peer} sent IVs for other features than were binned")
        if not all(isinstance(v, float) and (v >= 0 or math.isinf(v)) for v in summary.iv):
            raise MalformedMessageError(f"{self.peer} sent an IV that is not a non-negative number")
        self.iv = dict(zip(self.names, summary.iv, strict=True))

    def result(self) -> FeaturePartyWoe:
        return FeaturePartyWoe(bins=dict(self.bins), methods=dict(zip(self.names, self.methods, strict=True)), iv=self.iv)


def woe_iv_feature_party(
    chan: Channel,
    peer: str,
    features: pd.DataFrame | Mapping[str, Any],
    *,
    params: WoeParams | None = None,
    step: str = STEP,
) -> FeaturePartyWoe:
    """The feature party's side: bin own features, sum encrypted labels per bin, apply merge decisions."""
    me = WoeFeatureParty(features, params, peer)
    pk = me.accept_labels(chan.recv(peer, f"{step}/labels", expect=EncryptedLabels))
    sums = me.bin_sums(_incoming(chan, peer, f"{step}/label_chunk", LabelChunk))
    chan.disclose(step, ENCRYPTED_LABELS, peer, chan.party, (me.n,), scheme=pk.scheme, key_bits=pk.bits)
    chan.send(peer, f"{step}/bin_sums", sums)
    record_bin_sums(chan, step, sums, chan.party, peer, me.params)
    if me.supervised:
        dec = chan.recv(peer, f"{step}/merges", expect=MergeDecisions)
        me.apply_merges(dec)
        record_merges(chan, step, dec, peer, chan.party)
    if me.params.share_iv:
        me.receive_iv(chan.recv(peer, f"{step}/iv", expect=IvSummary))
        chan.disclose(step, IV_PER_FEATURE, peer, chan.party, (len(me.names),))
    return me.result()


def _incoming(chan: Channel, peer: str, topic: str, kind: type[_M]) -> Iterator[_M]:
    """Messages of ``kind`` from ``peer`` under ``topic``, received one at a time as they are asked for."""
    while True:
        yield chan.recv(peer, topic, expect=kind)


# --- checks --------------------------------------------------------------------------------------
def _check_small_cells(names: list[str], counts: list[np.ndarray], n: int, min_size: int) -> None:
    """Last guard before anything leaves: every bin holds min_size rows or is the only bin."""
    for name, c in zip(names, counts, strict=True):
        if c.sum() != n or (len(c) > 1 and int(c.min()) < min_size):
            raise DataError(
                f"binning of {name!r} breaks the small-cell rule (bins {c.tolist()}); this is a bug"
            )
