"""The wire messages of group sums; their names are part of the protocol (``PROTOCOL``'s version)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from misuan.net import wire
from misuan.net.protocol import ProtocolInfo

PROTOCOL = ProtocolInfo("group_sums", 1, "sums of the label party's per-row columns by the feature party's groups")
STEP = "group_sums"
MAX_ROWS = 10_000_000
MAX_COLUMNS = 16
MAX_GROUPS = 1_000


@wire.message("group_sums.EncryptedColumns", max_bytes=4 << 30)
@dataclasses.dataclass
class EncryptedColumns:
    """One ciphertext per row: the row's columns packed into slots of ``slot_bits`` bits (column 0 lowest)."""

    public_key: dict[str, Any]
    n_columns: int
    slot_bits: int
    ciphertexts: np.ndarray  # S{ciphertext_bytes}, one per row, in the rows' agreed order


@wire.message("group_sums.GroupSums", max_bytes=64 << 20)
@dataclasses.dataclass
class GroupSums:
    """Per attribute, its groups' labels and one re-randomised ciphertext of each group's packed column sums."""

    attributes: list[str]
    groups: list[list[str]]  # per attribute, the labels of its revealed groups
    ciphertexts: np.ndarray  # S{ciphertext_bytes}, the groups of every attribute in order
