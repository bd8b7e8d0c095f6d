"""A SecureBoost model part compiled for scoring one applicant at a time: every tree's leaves laid out
side by side, and each split node as two leaf masks (the leaves under its left and under its right
child; leaves elsewhere in both), so that the leaves a party's splits allow for a batch of rows are one
integer matrix product instead of a walk per tree, leaf and row.

The leaf sets on the wire are :class:`~misuan.protocols.secureboost.messages.LeafSets`' (per tree, the
allowed leaves in ascending node id, bit-packed little-endian), so a compiled partner answers exactly
what :func:`~misuan.protocols.secureboost.model.leaf_sets_for` would, and a compiled bank reads them as
:func:`~misuan.protocols.secureboost.model.answers_of` does: the same leaves, hence the same margins,
summed tree by tree in the same order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from misuan.errors import InconsistentPeerError, MalformedMessageError
from misuan.protocols.secureboost.model import tree_leaves

__all__ = ["CompiledForest", "compile_forest"]


@dataclasses.dataclass
class CompiledForest:
    """The leaves of every tree, and one party's split nodes as masks over them."""

    n_leaves: np.ndarray  # (trees,) leaves per tree
    leaf_ids: list[np.ndarray]  # per tree, its leaf node ids (ascending)
    starts: np.ndarray  # (trees,) first column of each tree's leaves
    slots: np.ndarray  # (leaves,) each leaf's bit in the packed layout (trees padded to whole bytes)
    packed_bits: int  # columns of the padded layout
    features: np.ndarray  # (splits,) the feature column of each split node of this party
    thresholds: np.ndarray  # (splits,) NaN where the split is "missing vs present"
    default_left: np.ndarray  # (splits,) bool
    path_splits: np.ndarray  # (leaves, depth): this party's split nodes on each leaf's path (padded: splits)
    path_left: np.ndarray  # (leaves, depth) bool: the direction the path takes there (padding: True)

    @property
    def total(self) -> int:
        return int(self.n_leaves.sum())

    def allowed(self, X: np.ndarray) -> np.ndarray:
        """bool (rows, leaves): the leaves this party's splits allow for each row of ``X``."""
        n = X.shape[0]
        if not len(self.features):
            return np.ones((n, self.total), dtype=bool)
        cols = X[:, self.features]
        missing = np.isnan(cols)
        with np.errstate(invalid="ignore"):
            left = np.where(missing, self.default_left, np.where(np.isnan(self.thresholds), ~self.default_left,
                                                                 cols < self.thresholds))
        # a leaf is allowed when the row goes its path's way at each of this party's nodes on the path
        ext = np.concatenate([left, np.ones((n, 1), dtype=bool)], axis=1)  # the padding column: always "left"
        return (ext[:, self.path_splits] == self.path_left).all(axis=2)

    def pack(self, allowed: np.ndarray) -> np.ndarray:
        """The leaf sets as LeafSets' masks: per tree, ``ceil(leaves / 8)`` bytes, little-endian bits."""
        bits = np.zeros((allowed.shape[0], self.packed_bits), dtype=bool)
        bits[:, self.slots] = allowed
        return np.packbits(bits, axis=1, bitorder="little")

    def unpack(self, masks: np.ndarray, peer: str) -> np.ndarray:
        """The inverse of :meth:`pack`, refusing bits set beyond a tree's leaves."""
        if masks.dtype != np.uint8 or masks.ndim != 2 or masks.shape[1] * 8 != self.packed_bits:
            raise MalformedMessageError(f"{peer}'s leaf sets have shape {masks.shape}, expected (rows, {self.packed_bits // 8})")
        bits = np.unpackbits(masks, axis=1, bitorder="little").astype(bool)
        padding = np.ones(self.packed_bits, dtype=bool)
        padding[self.slots] = False
        if bits[:, padding].any():
            raise MalformedMessageError(f"{peer}'s leaf sets set bits beyond a tree's leaves")
        return bits[:, self.slots]

    def leaves_of(self, allowed: np.ndarray, peers: str) -> np.ndarray:
        """(rows, trees) column of each row's one leaf per tree; :class:`InconsistentPeerError` if not one."""
        counts = np.add.reduceat(allowed.astype(np.int32), self.starts, axis=1) if allowed.size else np.zeros((0, 0))
        if not np.all(counts == 1):
            r, t = (int(v[0]) for v in np.nonzero(counts != 1))
            raise InconsistentPeerError(f"{peers} failed the leaf sets check: tree {t}, row {r}: {int(counts[r, t])} "
                                        "leaves remain, not 1", peer=peers, check="leaf sets")
        return np.nonzero(allowed)[1].reshape(allowed.shape[0], len(self.starts))


def compile_forest(
    shapes: Sequence[Mapping[int, tuple[int, int]]], splits: Sequence[tuple[int, int, int, float | None, bool]],
) -> CompiledForest:
    """``shapes[t]``: tree ``t``'s split node -> (left, right); ``splits``: this party's split nodes as
    (tree, node, feature column, threshold or None, default_left)."""
    leaf_lists = [tree_leaves(s) for s in shapes]
    n_leaves = np.array([len(ls) for ls in leaf_lists], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(n_leaves)[:-1]]).astype(np.int64)
    widths = (n_leaves + 7) // 8 * 8
    slot_starts = np.concatenate([[0], np.cumsum(widths)[:-1]]).astype(np.int64)
    slots = np.concatenate([s + np.arange(k) for s, k in zip(slot_starts, n_leaves, strict=True)]).astype(np.int64)
    total = int(n_leaves.sum())
    index = {(t, node): j for j, (t, node, _f, _th, _dl) in enumerate(splits)}
    paths = [[(index[(t, nid)], side) for nid, side in path if (t, nid) in index]
             for t, ls in enumerate(leaf_lists) for _leaf, path in ls]
    depth = max((len(p) for p in paths), default=0) or 1
    path_splits = np.full((total, depth), len(splits), dtype=np.int64)
    path_left = np.ones((total, depth), dtype=bool)
    for k, p in enumerate(paths):
        for d, (j, side) in enumerate(p):
            path_splits[k, d], path_left[k, d] = j, side
    return CompiledForest(
        n_leaves, [np.array([leaf for leaf, _ in ls], dtype=np.int64) for ls in leaf_lists], starts, slots,
        int(widths.sum()), np.array([s[2] for s in splits], dtype=np.int64),
        np.array([np.nan if s[3] is None else float(s[3]) for s in splits], dtype=np.float64),
        np.array([bool(s[4]) for s in splits], dtype=bool), path_splits, path_left,
    )


def shapes_of_model_trees(trees: Sequence[dict[str, Any]]) -> list[dict[int, tuple[int, int]]]:
    return [{nd["id"]: (nd["left"], nd["right"]) for nd in tree["nodes"] if "leaf" not in nd} for tree in trees]
