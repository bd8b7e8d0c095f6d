"""The wire messages of SecureBoost and the checks a receiver applies to their arrays.

The names (``secureboost.TreeStart``, ...) are part of the protocol (``PROTOCOL``'s version), not of
the file layout. Every message goes under the step's name: ``{step}/schema`` (feature party ->
label party), ``{step}/cmd`` (label party -> feature party: setup, trees, levels, splits, decision
requests, end), ``{step}/hist``, ``{step}/split`` and ``{step}/decisions`` (the feature party's replies:
:class:`LeafSets` in the leaf-set mode, :class:`Decisions` in the per-node mode).

Version 2: missing-value splits as XGBoost's (a split bin may be ``-1`` or the last value bin),
monotone constraints in the schema, tree shapes at the end of training, the leaf-set prediction mode.
Version 3: histograms from OT-extension shares (:mod:`.shares`): the setup names the method; the OT
extension's messages (:class:`OtBase` and :class:`OtColumns` from the feature party under
``{step}/ot``, :class:`OtPoints` under ``{step}/cmd``); per-tree corrections in :class:`TreeStart`; share sums in
:class:`HistogramReply`.

A *tree shape* is an int32 ``(K, 4)`` array, one row ``(tree, node, left child, right child)`` per
split node; the other node ids it names (and node 0 of a tree with no row) are the tree's leaves.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from misuan.errors import MalformedMessageError
from misuan.net import wire
from misuan.net.protocol import ProtocolInfo

__all__ = [
    "PROTOCOL", "STEP", "DecisionRequest", "Decisions", "HistogramReply", "LeafSets", "LevelPlan", "OtBase", "OtColumns",
    "OtPoints", "Schema", "Setup", "SplitReply", "SplitRequest", "TrainEnd", "TreeStart", "check_array", "check_range",
]

PROTOCOL = ProtocolInfo("secureboost", 3, "vertical gradient boosting: masked or encrypted gradients, per-bin histograms")
STEP = "secureboost"


@wire.message("secureboost.Schema")
@dataclasses.dataclass
class Schema:
    """A feature party's schema: rows, feature names, bins per feature and its monotone constraints."""

    n_rows: int
    feature_names: list[str]
    n_bins: np.ndarray  # int32 (F,), missing bin included
    monotone: np.ndarray  # int8 (F,): 1 increasing, -1 decreasing, 0 none


@wire.message("secureboost.Setup")
@dataclasses.dataclass
class Setup:
    """How the histograms are computed: ``"he"`` with the label party's public key, or ``"ot"`` with a session id."""

    histograms: str  # "ot" or "he"
    public_key: dict[str, Any]  # empty for "ot"
    session: np.ndarray  # uint8 (16,) for "ot"; empty for "he"


@wire.message("secureboost.OtBase")
@dataclasses.dataclass
class OtBase:
    """The feature party's base-OT message (it is the base OTs' sender, the extension's receiver)."""

    point: np.ndarray  # uint8 (32,)


@wire.message("secureboost.OtPoints")
@dataclasses.dataclass
class OtPoints:
    """The label party's base-OT points (its 128 secret choice bits, blinded)."""

    points: np.ndarray  # uint8 (128, 32)


@wire.message("secureboost.OtColumns")
@dataclasses.dataclass
class OtColumns:
    """One chunk of the OT extension's columns, OTs ``start`` onwards (chunks in order)."""

    start: int
    columns: np.ndarray  # uint8 (128, OTs / 8)


@wire.message("secureboost.TreeStart")
@dataclasses.dataclass
class TreeStart:
    tree: int
    rows: np.ndarray  # int32, sorted: the rows of this tree (all, or the subsample)
    ciphertexts: np.ndarray  # S<ciphertext_bytes>: packed (g, h) of rows[i]
    features: np.ndarray  # bool (F,): this party's features sampled for the tree
    slot_bits: int
    per_ct: int
    label_only: bool
    corrections: np.ndarray  # uint64 (rows, sampled features, 2): masked gradient pairs ("ot"); empty for "he"


@wire.message("secureboost.LevelPlan")
@dataclasses.dataclass
class LevelPlan:
    depth: int
    node_ids: np.ndarray  # int32: the level's nodes
    positions: np.ndarray  # int32 (n_rows,): index into node_ids, -1 for rows in no node
    compute: np.ndarray  # int32: indices of the nodes whose histograms are wanted


@wire.message("secureboost.HistogramReply")
@dataclasses.dataclass
class HistogramReply:
    ciphertexts: np.ndarray  # S<ciphertext_bytes> ("he"; empty for "ot")
    shares: np.ndarray  # uint64 (nodes, sampled bins, 2): sums of the feature party's shares ("ot"; empty for "he")


@wire.message("secureboost.SplitRequest")
@dataclasses.dataclass
class SplitRequest:
    nodes: np.ndarray  # int32: indices into the level's node_ids
    features: np.ndarray  # int32: this party's feature
    bins: np.ndarray  # int32: split after this bin; -1: no present value left, last value bin: all left
    default_left: np.ndarray  # bool


@wire.message("secureboost.SplitReply")
@dataclasses.dataclass
class SplitReply:
    left: np.ndarray  # bool: for each requested node, its rows (ascending) going left


@wire.message("secureboost.DecisionRequest")
@dataclasses.dataclass
class DecisionRequest:
    purpose: str  # "eval" or "predict"
    tree: int  # for "eval": the tree to evaluate; -1: all kept trees
    n_rows: int
    mode: str  # "leaves": reply LeafSets; "nodes": reply Decisions
    shape: np.ndarray  # int32 (K, 4): for "eval", the evaluated tree's shape; empty for "predict"


@wire.message("secureboost.Decisions")
@dataclasses.dataclass
class Decisions:
    trees: np.ndarray  # int32 (S,)
    nodes: np.ndarray  # int32 (S,)
    left: np.ndarray  # bool (n_rows, S)


@wire.message("secureboost.LeafSets")
@dataclasses.dataclass
class LeafSets:
    """Per row and tree, the leaves consistent with the sender's splits (its other nodes: either way).

    Tree ``trees[j]`` owns ``ceil(n_leaves[j] / 8)`` bytes of each row, in order; bit ``i`` (least
    significant first) of them is leaf ``i`` of the tree, leaves in ascending node id.
    """

    trees: np.ndarray  # int32 (T,)
    n_leaves: np.ndarray  # int32 (T,)
    masks: np.ndarray  # uint8 (n_rows, sum of the trees' bytes)


@wire.message("secureboost.TrainEnd")
@dataclasses.dataclass
class TrainEnd:
    n_trees: int
    shape: np.ndarray  # int32 (K, 4): the shapes of the kept trees


def check_array(arr: Any, what: str, kind: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """``arr`` if it is an array of dtype kind ``kind`` (and ``shape``), else MalformedMessageError."""
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in kind:
        raise MalformedMessageError(f"{what}: expected an array of kind {kind!r}, got {getattr(arr, 'dtype', type(arr))}")
    if shape is not None and arr.shape != shape:
        raise MalformedMessageError(f"{what}: expected shape {shape}, got {arr.shape}")
    return arr


def check_range(arr: np.ndarray, lo: int, hi: int, what: str) -> None:
    if arr.size and (int(arr.min()) < lo or int(arr.max()) >= hi):
        raise MalformedMessageError(f"{what}: values must lie in [{lo}, {hi})")
