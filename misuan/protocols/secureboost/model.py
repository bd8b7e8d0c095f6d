"""The trained model parts, tree shapes and how rows go through them.

The label party's part (``role = "label_party"``) holds the trees: every node's party and feature
index, its own thresholds, leaf values, gains and covers. A feature party's part holds, for each
split node on its features, the feature name, threshold and default direction, and the shape of
every tree (child links, no values); the label party never sees the thresholds, so routing a row
needs that party's answer: its :class:`LeafSets` (leaf-set mode) or :class:`Decisions` (per-node mode).

A split's threshold is ``None`` for "missing vs present": every present value goes to the side
opposite the missing ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from misuan.errors import MalformedMessageError, ProtocolError
from misuan.protocols.secureboost.checks import peer_contradicts
from misuan.protocols.secureboost.messages import Decisions, LeafSets, check_array

__all__ = [
    "MODEL_VERSION", "Answers", "Leaf", "TrainResult", "answers_of", "consistent_leaves", "decisions_for", "goes_left", "importance_of",
    "leaf_sets_for", "node_decisions", "read_decisions", "read_leaf_sets", "route", "route_leaves", "shape_of",
    "tree_children", "tree_leaves", "trees_of_shape",
]

MODEL_VERSION = 2  # 2: "missing vs present" splits (threshold None), tree shapes in the feature party's part

NodeDecisions = dict[tuple[str, int], np.ndarray]  # (party, node id) -> left (bool) per row
Leaf = tuple[int, list[tuple[int, bool]]]  # a leaf's node id and its path: (node, went left) from the root


@dataclasses.dataclass
class TrainResult:
    model: dict[str, Any]  # this party's model part (JSON-able)
    history: list[dict[str, float]]  # per tree: timings and validation metric
    best_iteration: int | None = None


def goes_left(x: np.ndarray, threshold: float | None, default_left: bool) -> np.ndarray:
    """Rows of ``x`` (one feature) that go left at a split: ``x < threshold``, missing to the default side."""
    missing = np.isnan(x)
    if threshold is None:
        return np.where(missing, default_left, not default_left)
    return np.where(missing, default_left, x < threshold)


# --- tree shapes --------------------------------------------------------------------------------
def tree_children(tree: dict[str, Any]) -> dict[int, tuple[int, int]]:
    """The label party's tree as child links: split node id -> (left, right)."""
    return {nd["id"]: (nd["left"], nd["right"]) for nd in tree["nodes"] if "leaf" not in nd}


def shape_of(trees: Mapping[int, dict[str, Any]]) -> np.ndarray:
    """The shape rows ``(tree, node, left, right)`` of ``trees`` (see :mod:`.messages`)."""
    rows = [(t, nid, lr[0], lr[1]) for t, tree in sorted(trees.items()) for nid, lr in sorted(tree_children(tree).items())]
    return np.array(rows, dtype=np.int32).reshape(-1, 4)


def trees_of_shape(shape: Any, trees: Sequence[int]) -> dict[int, dict[int, tuple[int, int]]]:
    """A received shape as child links per tree of ``trees``; each must be a binary tree rooted at node 0."""
    arr = check_array(shape, "tree shape", "iu")
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise MalformedMessageError(f"tree shape: expected (K, 4) rows, got {arr.shape}")
    out: dict[int, dict[int, tuple[int, int]]] = {t: {} for t in trees}
    for t, nid, left, right in arr.tolist():
        if t not in out or nid in out[t]:
            raise MalformedMessageError(f"tree shape: node {nid} of tree {t} is unexpected or repeated")
        out[t][nid] = (left, right)
    for t, children in out.items():
        kids = [c for lr in children.values() for c in lr]
        # one parent per node and none for the root: no cycle can be reached from the root
        if len(set(kids)) != len(kids) or 0 in kids or len(tree_leaves(children)) != len(children) + 1:
            raise MalformedMessageError(f"tree shape of tree {t} is not a binary tree rooted at node 0")
    return out


def tree_leaves(children: Mapping[int, tuple[int, int]]) -> list[Leaf]:
    """The leaves of a tree (ascending node id), each with its path from the root."""
    out: list[Leaf] = []
    stack: list[Leaf] = [(0, [])]
    while stack:
        nid, path = stack.pop()
        if nid in children:
            if len(path) > 64:
                raise MalformedMessageError("tree shape: a path is longer than any tree misuan grows")
            left, right = children[nid]
            stack += [(left, [*path, (nid, True)]), (right, [*path, (nid, False)])]
        else:
            out.append((nid, path))
    return sorted(out, key=lambda leaf: leaf[0])


def consistent_leaves(leaves: Sequence[Leaf], decisions: Mapping[int, np.ndarray], n_rows: int) -> np.ndarray:
    """bool ``(n_rows, leaves)``: the leaves whose path agrees with ``decisions`` (node -> left per row) at
    every node it has; nodes without a decision (another party's) may go either way."""
    out = np.ones((n_rows, len(leaves)), dtype=bool)
    for j, (_, path) in enumerate(leaves):
        for nid, left in path:
            d = decisions.get(nid)
            if d is not None:
                out[:, j] &= d == left
    return out


# --- routing ------------------------------------------------------------------------------------
def node_decisions(tree: dict[str, Any], X_label: np.ndarray, me: str) -> dict[int, np.ndarray]:
    """The label party's own decisions (left per row) at its split nodes of ``tree``."""
    return {
        nd["id"]: goes_left(X_label[:, nd["feature"]], nd["threshold"], nd["default_left"])
        for nd in tree["nodes"]
        if "leaf" not in nd and nd["party"] == me
    }


def route_leaves(tree: dict[str, Any], X_label: np.ndarray, decisions: Mapping[tuple[str, int], np.ndarray], me: str) -> np.ndarray:
    """Leaf node id of every row. ``decisions[(party, node_id)]`` is that party's left/right per row."""
    n = X_label.shape[0]
    nodes = {nd["id"]: nd for nd in tree["nodes"]}
    out = np.zeros(n, dtype=np.int64)
    stack = [(0, np.arange(n))]
    while stack:
        nid, rows = stack.pop()
        nd = nodes[nid]
        if "leaf" in nd:
            out[rows] = nid
            continue
        if nd["party"] == me:
            left = goes_left(X_label[rows, nd["feature"]], nd["threshold"], nd["default_left"])
        else:
            left = decisions[(nd["party"], nid)][rows]
        stack.append((nd["left"], rows[left]))
        stack.append((nd["right"], rows[~left]))
    return out


def leaf_values(tree: dict[str, Any], leaf_ids: np.ndarray) -> np.ndarray:
    """The value of each row's leaf."""
    values = {nd["id"]: nd["leaf"] for nd in tree["nodes"] if "leaf" in nd}
    return np.array([values[int(i)] for i in leaf_ids.tolist()], dtype=np.float64)


def route(tree: dict[str, Any], X_label: np.ndarray, decisions: Mapping[tuple[str, int], np.ndarray], me: str) -> np.ndarray:
    """Leaf value of every row. ``decisions[(party, node_id)]`` is that party's left/right per row."""
    return leaf_values(tree, route_leaves(tree, X_label, decisions, me))


def importance_of(trees: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per ``party:feature``: total gain and split count (XGBoost's ``total_gain`` and ``weight``)."""
    out: dict[str, dict[str, float]] = {}
    for tr in trees:
        for nd in tr["nodes"]:
            if "leaf" in nd:
                continue
            key = f"{nd['party']}:{nd['feature_name']}"
            e = out.setdefault(key, {"total_gain": 0.0, "weight": 0.0})
            e["total_gain"] += nd["gain"]
            e["weight"] += 1.0
    return out


# --- a feature party's answers ------------------------------------------------------------------
def _split_decisions(splits: Sequence[dict[str, Any]], X: np.ndarray, names: Sequence[str]) -> np.ndarray:
    idx = {nm: j for j, nm in enumerate(names)}
    left = np.zeros((X.shape[0], len(splits)), dtype=bool)
    for j, sp in enumerate(splits):
        left[:, j] = goes_left(X[:, idx[sp["feature"]]], sp["threshold"], sp["default_left"])
    return left


def decisions_for(splits: Sequence[dict[str, Any]], X: np.ndarray, names: Sequence[str]) -> Decisions:
    """A feature party's decisions on ``X`` at each of ``splits`` (its model part's split nodes)."""
    return Decisions(
        np.array([sp["tree"] for sp in splits], dtype=np.int32),
        np.array([sp["node"] for sp in splits], dtype=np.int32),
        _split_decisions(splits, X, names),
    )


def leaf_sets_for(
    splits: Sequence[dict[str, Any]], shapes: Mapping[int, Mapping[int, tuple[int, int]]], X: np.ndarray, names: Sequence[str]
) -> LeafSets:
    """A feature party's leaf sets on ``X``: per tree, the leaves its own splits allow for each row."""
    left = _split_decisions(splits, X, names)
    trees = sorted(shapes)
    n_leaves, blocks = [], []
    for t in trees:
        mine = {sp["node"]: left[:, j] for j, sp in enumerate(splits) if sp["tree"] == t}
        leaves = tree_leaves(shapes[t])
        n_leaves.append(len(leaves))
        blocks.append(np.packbits(consistent_leaves(leaves, mine, X.shape[0]), axis=1, bitorder="little"))
    masks = np.concatenate(blocks, axis=1) if blocks else np.zeros((X.shape[0], 0), dtype=np.uint8)
    return LeafSets(np.array(trees, dtype=np.int32), np.array(n_leaves, dtype=np.int32), masks)


# --- the label party's reading --------------------------------------------------------------------
def read_decisions(
    peer: str, reply: Decisions, trees: Mapping[int, dict[str, Any]], n_rows: int, per_tree: Mapping[int, NodeDecisions]
) -> None:
    """Check ``peer``'s decisions cover exactly its split nodes in ``trees``; file them in ``per_tree``."""
    tr = check_array(reply.trees, "decision trees", "iu")
    nd = check_array(reply.nodes, "decision nodes", "iu", tr.shape)
    left = check_array(reply.left, "decisions", "b", (n_rows, len(tr)))
    got = {(int(a), int(b)) for a, b in zip(tr.tolist(), nd.tolist(), strict=True)}
    need = {(t, node["id"]) for t, tree in trees.items() for node in tree["nodes"] if node.get("party") == peer and "leaf" not in node}
    if got != need:
        raise ProtocolError(f"{peer} sent decisions for split nodes {sorted(got)[:5]}..., expected {sorted(need)[:5]}...")
    for j, (a, b) in enumerate(zip(tr.tolist(), nd.tolist(), strict=True)):
        per_tree[int(a)][(peer, int(b))] = left[:, j]


def read_leaf_sets(peer: str, reply: LeafSets, trees: Mapping[int, dict[str, Any]], n_rows: int) -> dict[int, np.ndarray]:
    """``peer``'s leaf sets as bool ``(n_rows, leaves)`` per tree, checked against the trees' shapes."""
    order = sorted(trees)
    n_leaves = [len(tree_leaves(tree_children(trees[t]))) for t in order]
    widths = [-(-k // 8) for k in n_leaves]
    tr = check_array(reply.trees, "leaf-set trees", "iu", (len(order),))
    nl = check_array(reply.n_leaves, "leaf counts", "iu", (len(order),))
    masks = check_array(reply.masks, "leaf sets", "u", (n_rows, sum(widths)))
    if tr.tolist() != order or nl.tolist() != n_leaves or masks.dtype != np.uint8:
        raise ProtocolError(f"{peer} sent leaf sets of trees {tr.tolist()[:5]} with {nl.tolist()[:5]} leaves; expected {order[:5]}, {n_leaves[:5]}")
    out, start = {}, 0
    for t, k, w in zip(order, n_leaves, widths, strict=True):
        bits = np.unpackbits(masks[:, start : start + w], axis=1, bitorder="little")
        if bits[:, k:].any():
            raise MalformedMessageError(f"{peer}'s leaf sets of tree {t} set bits beyond its {k} leaves")
        out[t] = bits[:, :k].astype(bool)
        start += w
    return out


@dataclasses.dataclass
class Answers:
    """What the label party knows of rows after the feature parties' answers, per tree."""

    leaves: dict[int, np.ndarray]  # leaf node id of every row
    decisions: dict[int, NodeDecisions] | None  # the feature parties' split decisions (per-node mode only)


def answers_of(
    replies: Sequence[tuple[str, LeafSets | Decisions]], trees: Mapping[int, dict[str, Any]], X_label: np.ndarray, me: str
) -> Answers:
    """Each row's leaf per tree from the feature parties' replies and the label party's own splits.

    Leaf sets are intersected with the leaves the label party's own splits allow; exactly one leaf
    must remain per row and tree, else :class:`~misuan.errors.InconsistentPeerError` names the peers.
    """
    n = X_label.shape[0]
    if all(isinstance(r, Decisions) for _, r in replies):
        per_tree: dict[int, NodeDecisions] = {t: {} for t in trees}
        for peer, reply in replies:
            read_decisions(peer, reply, trees, n, per_tree)  # type: ignore[arg-type]
        return Answers({t: route_leaves(tree, X_label, per_tree[t], me) for t, tree in trees.items()}, per_tree)
    if not all(isinstance(r, LeafSets) for _, r in replies):
        raise ProtocolError("the feature parties answered a prediction in different modes")
    sets = [read_leaf_sets(peer, reply, trees, n) for peer, reply in replies]  # type: ignore[arg-type]
    leaves = {}
    for t, tree in trees.items():
        ids = tree_leaves(tree_children(tree))
        both = consistent_leaves(ids, node_decisions(tree, X_label, me), n)
        for s in sets:
            both &= s[t]
        if not np.all(both.sum(axis=1) == 1):
            peers = ", ".join(peer for peer, _ in replies)
            bad = int(np.flatnonzero(both.sum(axis=1) != 1)[0])
            raise peer_contradicts(peers, "leaf sets", f"tree {t}, row {bad}: {int(both[bad].sum())} leaves remain, not 1")
        leaves[t] = np.array([ids[j][0] for j in np.argmax(both, axis=1).tolist()], dtype=np.int64)
    return Answers(leaves, None)
