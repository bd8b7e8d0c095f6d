"""The wire messages of WOE/IV, in protocol order; their names are part of the protocol (``PROTOCOL``'s version)."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import numpy as np

from misuan.net import wire
from misuan.net.protocol import FEATURE_PARTY, LABEL_PARTY, ProtocolInfo

__all__ = [
    "FEATURE_PARTY",
    "LABEL_CHUNK_ROWS",
    "LABEL_PARTY",
    "MAX_CHUNK_ROWS",
    "MAX_FEATURES",
    "MAX_NAME",
    "PROTOCOL",
    "STEP",
    "BinSums",
    "EncryptedLabels",
    "IvSummary",
    "LabelChunk",
    "MergeDecisions",
    "Role",
]

PROTOCOL = ProtocolInfo("woe", 1, "WOE/IV of one party's features against the other's labels, under HE")
STEP = "woe"
Role = Literal["label_party", "feature_party"]
MAX_FEATURES = 100_000
MAX_NAME = 256
LABEL_CHUNK_ROWS = 8192  # ~2 MB of 2048-bit OU ciphertexts per message
MAX_CHUNK_ROWS = 1 << 20


@wire.message("woe.EncryptedLabels")
@dataclasses.dataclass
class EncryptedLabels:
    params_fingerprint: str  # WoeParams.fingerprint(): both parties must run the same job
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
    cuts: list[np.ndarray]  # float64 per feature, empty unless params.share_edges


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
