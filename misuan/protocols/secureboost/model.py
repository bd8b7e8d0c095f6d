"""The trained model parts and how rows go through them.

The label party's part (``role = "label_party"``) holds the trees: every node's party and feature
index, its own thresholds, leaf values, gains and covers. A feature party's part holds, for each
split node on its features, the feature name, threshold and default direction; the label party
never sees them, so routing a row needs that party's :class:`Decisions` (left or right per split
node and row).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from misuan.errors import ProtocolError
from misuan.protocols.secureboost.messages import Decisions, check_array

__all__ = ["MODEL_VERSION", "TrainResult", "decisions_for", "importance_of", "read_decisions", "route"]

MODEL_VERSION = 1

NodeDecisions = dict[tuple[str, int], np.ndarray]  # (party, node id) -> left (bool) per row


@dataclasses.dataclass
class TrainResult:
    model: dict[str, Any]  # this party's model part (JSON-able)
    history: list[dict[str, float]]  # per tree: timings and validation metric
    best_iteration: int | None = None


def route(tree: dict[str, Any], X_label: np.ndarray, decisions: Mapping[tuple[str, int], np.ndarray], me: str) -> np.ndarray:
    """Leaf value of every row. ``decisions[(party, node_id)]`` is that party's left/right per row."""
    n = X_label.shape[0]
    nodes = {nd["id"]: nd for nd in tree["nodes"]}
    out = np.zeros(n)
    stack = [(0, np.arange(n))]
    while stack:
        nid, rows = stack.pop()
        nd = nodes[nid]
        if "leaf" in nd:
            out[rows] = nd["leaf"]
            continue
        if nd["party"] == me:
            x = X_label[rows, nd["feature"]]
            left = np.where(np.isnan(x), nd["default_left"], x < nd["threshold"])
        else:
            left = decisions[(nd["party"], nid)][rows]
        stack.append((nd["left"], rows[left]))
        stack.append((nd["right"], rows[~left]))
    return out


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


def decisions_for(splits: Sequence[dict[str, Any]], X: np.ndarray, names: Sequence[str]) -> Decisions:
    """A feature party's decisions on ``X`` at each of ``splits`` (its model part's split nodes)."""
    idx = {nm: j for j, nm in enumerate(names)}
    left = np.zeros((X.shape[0], len(splits)), dtype=bool)
    for j, sp in enumerate(splits):
        x = X[:, idx[sp["feature"]]]
        left[:, j] = np.where(np.isnan(x), sp["default_left"], x < sp["threshold"])
    return Decisions(
        np.array([sp["tree"] for sp in splits], dtype=np.int32),
        np.array([sp["node"] for sp in splits], dtype=np.int32),
        left,
    )


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
