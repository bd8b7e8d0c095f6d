"""The wire messages of online scoring; their names are part of the protocol (``PROTOCOL``'s version)."""

from __future__ import annotations

import dataclasses

import numpy as np

from misuan.net import wire
from misuan.net.protocol import ProtocolInfo

PROTOCOL = ProtocolInfo("serving", 2, "online joint scoring of trees or a scorecard: one applicant (or a batch) per request")
STEP = "serve"
MAX_BATCH = 100_000
MAX_ID_CHARS = 256


@wire.message("serving.Hello")
@dataclasses.dataclass
class Hello:
    """Each side's pin: the model id, its own part's SHA-256 and the one it expects of the peer."""

    model_id: str
    own_part: str
    peer_part: str


@wire.message("serving.ScoreRequest", max_bytes=64 << 20)
@dataclasses.dataclass
class ScoreRequest:
    seq: int  # increases by one per request on a session; a reply names it
    ids: list[str]  # normalised applicant IDs (real ones, and decoys when cover queries are on)


@wire.message("serving.ScoreReply", max_bytes=512 << 20)
@dataclasses.dataclass
class ScoreReply:
    """Per applicant: whether the partner knows it, and per tree the leaves the partner's splits allow."""

    seq: int
    known: np.ndarray  # bool (n,)
    trees: np.ndarray  # int32 (n_trees,)
    n_leaves: np.ndarray  # int32 (n_trees,)
    masks: np.ndarray  # uint8 (n, sum of ceil(n_leaves / 8)): the leaf sets, bit-packed per tree


@wire.message("serving.PointsReply", max_bytes=512 << 20)
@dataclasses.dataclass
class PointsReply:
    """A scorecard part's answer, per applicant: whether the partner knows it, the sum of its points,
    and its worst features (indices into ``names``) with the points each falls short of its best bin."""

    seq: int
    known: np.ndarray  # bool (n,)
    names: list[str]  # the partner's features, in its points table's order
    points: np.ndarray  # float64 (n,)
    features: np.ndarray  # int32 (n, k)
    short: np.ndarray  # float64 (n, k)
