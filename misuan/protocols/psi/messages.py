"""The wire messages of ECDH-PSI; their names are part of the protocol (``PROTOCOL``'s version).

Also the limits a received message is checked against: the digest length both sides must use and
the largest set and batch a peer may announce.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from misuan.crypto.ecdh import POINT_BYTES
from misuan.net import wire
from misuan.net.protocol import ProtocolInfo

PROTOCOL = ProtocolInfo("psi", 1, "private set intersection of customer IDs (ECDH over X25519)")
STEP = "psi"
DIGEST_BYTES = 16  # 128-bit digests: a false match among 2^32 x 2^32 IDs has probability 2^-64
MAX_BATCH_SIZE = 1 << 20
MAX_ROWS = 1 << 34

POINT_DTYPE = np.dtype(f"S{POINT_BYTES}")
DIGEST_DTYPE = np.dtype(f"S{DIGEST_BYTES}")


@wire.message("psi.Hello")
@dataclasses.dataclass
class Hello:
    version: int  # PROTOCOL.version
    group: str
    normalization: str  # IdNormalization.canonical()
    reveal: str  # "both", "size" or the receiving party's name
    n_rows: int
    batch_size: int
    digest_bytes: int


@wire.message("psi.BlindedBatch")
@dataclasses.dataclass
class BlindedBatch:
    start: int  # offset of this batch in the sender's (secretly permuted) order
    points: np.ndarray  # S32: k_sender * H(id), u-coordinates


@wire.message("psi.DigestBatch")
@dataclasses.dataclass
class DigestBatch:
    start: int  # offset in the recipient's order of step ``blinded`` (0, batch, ... when sorted)
    digests: np.ndarray  # S16: first bytes of k_sender * k_recipient * H(id)
