"""The wire messages of secure sum; their names are part of the protocol (``PROTOCOL``'s version)."""

from __future__ import annotations

import dataclasses

import numpy as np

from misuan.net import wire
from misuan.net.protocol import ProtocolInfo

PROTOCOL = ProtocolInfo("secure_sum", 1, "sum of integer vectors by additive secret sharing")
STEP = "secure_sum"


@wire.message("secure_sum.Share")
@dataclasses.dataclass
class Share:
    values: np.ndarray  # uint64, uniformly random


@wire.message("secure_sum.PartialSum")
@dataclasses.dataclass
class PartialSum:
    values: np.ndarray  # uint64: the sum of the shares this party holds
