"""Per-row feature contributions on the joint trees (XGBoost's ``pred_contribs``), label party side.

The label party holds every tree's structure, covers (hessian sums) and leaf values; what it learns
at prediction decides what it can explain:

- ``"treeshap"``: exact path-dependent TreeSHAP (Lundberg et al. 2020), what XGBoost's
  ``predict(pred_contribs=True)`` computes. It follows both children of every node, so it needs the
  row's decision at *every* split node: the per-node mode's answers.
- ``"saabas"``: the change of the node's expected value along the row's path, credited to the
  node's feature (XGBoost's ``approx_contribs=True``). It needs only each row's leaf, so it works in
  the leaf-set mode.

Columns: the label party's features, then each feature party's (in ``model["feature_parties"]``
order), then the bias (the base margin plus every tree's expected value); a row's contributions sum
to its margin. Node expected values are XGBoost's: leaf values averaged by cover.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import numpy as np

from misuan.protocols.secureboost.model import Answers, node_decisions, tree_children, tree_leaves

__all__ = ["ContributionMethod", "contribution_names", "contributions", "leaf_contributions", "reason_codes"]

ContributionMethod = Literal["treeshap", "saabas"]


def contribution_names(model: dict[str, Any]) -> list[str]:
    """The columns of :func:`contributions`: ``party:feature`` for every feature, then ``bias``."""
    names = [f"{model['party']}:{nm}" for nm in model["feature_names"]]
    for party, feats in model["feature_parties"].items():
        names += [f"{party}:{nm}" for nm in feats]
    return [*names, "bias"]


def _feature_columns(model: dict[str, Any]) -> dict[tuple[str, int], int]:
    cols, k = {}, 0
    for party, feats in [(model["party"], model["feature_names"]), *model["feature_parties"].items()]:
        for j in range(len(feats)):
            cols[(party, j)] = k
            k += 1
    return cols


def _mean_values(nodes: dict[int, dict[str, Any]]) -> dict[int, float]:
    """Each node's expected value: its leaves' values averaged by cover (XGBoost's ``FillNodeMeanValues``)."""
    out: dict[int, float] = {}

    def fill(nid: int) -> float:
        nd = nodes[nid]
        if "leaf" in nd:
            out[nid] = float(nd["leaf"])
        else:
            left, right = nd["left"], nd["right"]
            out[nid] = (fill(left) * nodes[left]["cover"] + fill(right) * nodes[right]["cover"]) / nd["cover"]
        return out[nid]

    fill(0)
    return out


def _path_deltas(tree: dict[str, Any], feature: dict[int, int], means: dict[int, float], width: int) -> dict[int, np.ndarray]:
    """Per leaf of ``tree``, the Saabas contributions of a row that ends there: along its path, each
    node's change of expected value goes to the node's feature (``width`` columns, bias excluded)."""
    out = {}
    for leaf, path in tree_leaves(tree_children(tree)):
        c = np.zeros(width)
        chain = [nid for nid, _ in path] + [leaf]
        for parent, child in zip(chain[:-1], chain[1:], strict=True):
            c[feature[parent]] += means[child] - means[parent]
        out[leaf] = c
    return out


def leaf_contributions(model: dict[str, Any]) -> list[dict[int, np.ndarray]]:
    """Per tree and leaf, the Saabas contributions of a row that ends in that leaf (its path is all that
    matters), with the root's expected value in the bias column: ``contributions(..., "saabas")`` of a
    row is ``base_margin`` in the bias plus the sum of these over its leaves (up to rounding order)."""
    cols = _feature_columns(model)
    out = []
    for tree in model["trees"]:
        nodes = {nd["id"]: nd for nd in tree["nodes"]}
        means = _mean_values(nodes)
        feature = {nid: cols[(nd["party"], nd["feature"])] for nid, nd in nodes.items() if "leaf" not in nd}
        per_leaf = _path_deltas(tree, feature, means, len(cols) + 1)
        for c in per_leaf.values():
            c[-1] = means[0]
        out.append(per_leaf)
    return out


def contributions(model: dict[str, Any], X_label: np.ndarray, answers: Answers, me: str, method: ContributionMethod) -> np.ndarray:
    """``(rows, features + 1)`` contributions of every tree of ``model`` (see the module docstring)."""
    cols = _feature_columns(model)
    n = X_label.shape[0]
    phi = np.zeros((n, len(cols) + 1))
    phi[:, -1] = float(model["base_margin"])
    for t, tree in enumerate(model["trees"]):
        nodes = {nd["id"]: nd for nd in tree["nodes"]}
        means = _mean_values(nodes)
        phi[:, -1] += means[0]
        feature = {nid: cols[(nd["party"], nd["feature"])] for nid, nd in nodes.items() if "leaf" not in nd}
        if method == "saabas":
            _saabas(phi, tree, answers.leaves[t], feature, means)
            continue
        if answers.decisions is None:
            raise ValueError("exact TreeSHAP needs every split decision: ask in the per-node mode")
        decisions = node_decisions(tree, X_label, me)
        decisions.update({nid: d for (_, nid), d in answers.decisions[t].items()})
        _TreeShap(nodes, feature, decisions, phi).run()
    return phi


def _saabas(phi: np.ndarray, tree: dict[str, Any], leaf_ids: np.ndarray, feature: dict[int, int], means: dict[int, float]) -> None:
    """Each row gets the contributions of the path to its leaf (:func:`_path_deltas`)."""
    for leaf, deltas in _path_deltas(tree, feature, means, phi.shape[1]).items():
        rows = leaf_ids == leaf
        if rows.any():
            phi[rows] += deltas


@dataclasses.dataclass
class _Element:
    """One element of TreeSHAP's unique path: a feature, its zero and one fractions, its weight (per row)."""

    feature: int
    zero: float
    one: np.ndarray
    weight: np.ndarray


@dataclasses.dataclass
class _TreeShap:
    """XGBoost's ``RegTree::TreeShap``, run for all rows at once (rows differ only in the one fractions)."""

    nodes: dict[int, dict[str, Any]]
    feature: dict[int, int]  # split node -> contribution column
    decisions: dict[int, np.ndarray]  # split node -> goes left, per row
    phi: np.ndarray

    def run(self) -> None:
        n = self.phi.shape[0]
        self._recurse(0, [], 1.0, np.ones(n), -1)

    def _recurse(self, nid: int, parent_path: list[_Element], zero: float, one: np.ndarray, feature: int) -> None:
        path = _extend(parent_path, zero, one, feature)
        nd = self.nodes[nid]
        if "leaf" in nd:
            for i in range(1, len(path)):
                w = _unwound_sum(path, i)
                el = path[i]
                self.phi[:, el.feature] += w * (el.one - el.zero) * nd["leaf"]
            return
        f = self.feature[nid]
        incoming_zero, incoming_one = 1.0, np.ones(self.phi.shape[0])
        k = next((i for i, el in enumerate(path) if el.feature == f), None)
        if k is not None:  # split on this feature before: undo it and redo it here
            incoming_zero, incoming_one = path[k].zero, path[k].one
            path = _unwind(path, k)
        left = self.decisions[nid]
        cover = nd["cover"]
        for child, goes in ((nd["left"], left), (nd["right"], ~left)):
            self._recurse(child, path, incoming_zero * self.nodes[child]["cover"] / cover, incoming_one * goes, f)


def _extend(path: list[_Element], zero: float, one: np.ndarray, feature: int) -> list[_Element]:
    depth = len(path)
    out = [_Element(el.feature, el.zero, el.one, el.weight.copy()) for el in path]
    out.append(_Element(feature, zero, one, np.full(len(one), 1.0 if depth == 0 else 0.0)))
    for i in range(depth - 1, -1, -1):
        out[i + 1].weight = out[i + 1].weight + one * out[i].weight * (i + 1) / (depth + 1)
        out[i].weight = zero * out[i].weight * (depth - i) / (depth + 1)
    return out


def _safe_div(a: np.ndarray, b: np.ndarray | float) -> np.ndarray:
    b_ = np.asarray(b, dtype=float)
    return np.divide(a, b_, out=np.zeros(np.broadcast(a, b_).shape), where=b_ != 0)


def _unwind(path: list[_Element], k: int) -> list[_Element]:
    """The path without element ``k`` (XGBoost's ``UnwindPath``)."""
    depth = len(path) - 1
    one, zero = path[k].one, path[k].zero
    weights = [el.weight.copy() for el in path]
    next_one = weights[depth]
    for i in range(depth - 1, -1, -1):
        by_one = _safe_div(next_one * (depth + 1), (i + 1) * one)
        by_zero = _safe_div(weights[i] * (depth + 1), zero * (depth - i))
        tmp = weights[i]
        weights[i] = np.where(one != 0, by_one, by_zero)
        next_one = np.where(one != 0, tmp - weights[i] * zero * (depth - i) / (depth + 1), next_one)
    kept = [el for i, el in enumerate(path[:depth + 1]) if i != k]
    return [_Element(el.feature, el.zero, el.one, weights[i]) for i, el in enumerate(kept)]


def _unwound_sum(path: list[_Element], k: int) -> np.ndarray:
    """Sum of the path's weights with element ``k`` unwound (XGBoost's ``UnwoundPathSum``)."""
    depth = len(path) - 1
    one, zero = path[k].one, path[k].zero
    next_one = path[depth].weight
    total = np.zeros_like(next_one)
    for i in range(depth - 1, -1, -1):
        tmp = _safe_div(next_one * (depth + 1), (i + 1) * one)
        by_zero = _safe_div(path[i].weight, zero) / ((depth - i) / (depth + 1)) if zero != 0 else np.zeros_like(total)
        total += np.where(one != 0, tmp, by_zero)
        next_one = np.where(one != 0, path[i].weight - tmp * zero * (depth - i) / (depth + 1), next_one)
    return total


def reason_codes(contribs: np.ndarray, names: list[str], k: int = 4, adverse: Literal["positive", "negative"] = "positive") -> list[list[str]]:
    """Per row, the ``k`` features that moved its score most in the adverse direction (bias excluded).

    ``adverse="positive"``: contributions that raise the margin are adverse (the model scores the
    bad outcome, as misuan's credit steps do: label 1 = default); ``"negative"`` for a model of the
    good outcome. Features with no adverse contribution are left out, so a row may get fewer.
    """
    sign = 1.0 if adverse == "positive" else -1.0
    feats = sign * contribs[:, :-1]
    out = []
    for row in feats:
        order = np.argsort(-row, kind="stable")[:k]
        out.append([names[j] for j in order.tolist() if row[j] > 0])
    return out
