"""The wire messages of KKRT-PSI; their names are part of the protocol (``PROTOCOL``'s version)."""

from __future__ import annotations

import dataclasses

import numpy as np

from misuan.net import wire
from misuan.net.protocol import ProtocolInfo

PROTOCOL = ProtocolInfo("kkrt", 3, "private set intersection from OT extension (KKRT16 batched OPRF, cuckoo hashing)")
STEP = "psi"


@wire.message("kkrt.Hello")
@dataclasses.dataclass
class Hello:
    version: int  # PROTOCOL.version
    normalization: str  # IdNormalization.canonical()
    reveal: str  # "both" or the receiving party's name
    n_rows: int
    code_bits: int
    hashes: int
    stat_bits: int
    nonce: np.ndarray  # (16,) uint8, random: both nonces key the hash that splits the IDs into buckets


@wire.message("kkrt.ReceiverSetup")
@dataclasses.dataclass
class ReceiverSetup:
    n_bins: int  # cuckoo table size (from the receiver's set size)
    bin_keys: np.ndarray  # (HASHES, 16) uint8: AES keys of the cuckoo hash functions
    base_ot: np.ndarray  # (32,) uint8: the base-OT sender's point A
    session: np.ndarray  # (16,) uint8: random, mixed into every hash tweak


@wire.message("kkrt.SenderSetup")
@dataclasses.dataclass
class SenderSetup:
    code_keys: np.ndarray  # (CODE_BITS/128, 16) uint8: AES keys of the pseudorandom code
    base_ot: np.ndarray  # (CODE_BITS, 32) uint8: the base-OT receiver's points B_i


@wire.message("kkrt.Columns")
@dataclasses.dataclass
class Columns:
    start: int  # first bin of the chunk
    columns: np.ndarray  # (CODE_BITS, bins/8) uint8: u_i = G(k_i^0) ^ G(k_i^1) ^ c_i over the chunk's bins


@wire.message("kkrt.Outputs")
@dataclasses.dataclass
class Outputs:
    start: int  # first item of the chunk in the sender's secret random order
    values: np.ndarray  # (items, HASHES, output_bytes) uint8: F(k_bin, y) at each candidate bin


@wire.message("kkrt.Matches")
@dataclasses.dataclass
class Matches:
    positions: np.ndarray  # int64: the sender's items in the intersection, positions in its random order


@wire.message("kkrt.Resume")
@dataclasses.dataclass
class Resume:
    """First message of :func:`misuan.protocols.kkrt.spill.kkrt_psi_spilled`: the run this party kept, if any."""

    token: np.ndarray  # (32,) uint8: SHA-256 of the kept run's two nonces; empty: nothing kept
    done: np.ndarray  # int32: the buckets the kept run finished
