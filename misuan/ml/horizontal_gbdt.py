"""Horizontal gradient boosting: lenders with the same features on different customers grow one
XGBoost-style model over secure aggregation (:mod:`misuan.protocols.secagg`); no party's rows,
counts, gradients or histograms leave it, only sums over all of them.

The same code runs at every data party and at the aggregator (which holds no rows): each step that
needs the pooled data is one aggregation round of a vector every data party computes on its rows,
and every party then makes the same deterministic decision from the same sums, so all grow the same
trees without sending them.

1. **Bins** (three rounds, :func:`misuan.ml.horizontal_binning.agree_edges`): pooled quantile bins
   from aggregated moments and fine histograms, ``max_bin`` per feature, the same at every party.
   Missing values get a bin of their own.
2. **Trees** (one round a level; a node's sums come with its level's histograms): the gradient and
   hessian sums of the logistic loss per node,
   feature and bin (``np.bincount`` over the party's rows); split finding on the sums as XGBoost's
   ``hist`` method does it (gain ``G_L^2/(H_L+lambda) + G_R^2/(H_R+lambda) - G^2/(H+lambda)``, halved,
   less ``gamma`` as in the XGBoost paper, before the split is made (XGBoost's code compares the
   unhalved gain with ``gamma`` and prunes afterwards: equal at the default ``gamma = 0``);
   ``min_child_weight``; missing values sent to whichever side gains more, "missing vs present"
   included), leaf weights ``-eta * G / (H + lambda)``.

**What is revealed**, to the aggregator and every data party: the pooled per-feature sums, squares
and counts, the pooled fine histograms (so the pooled quantiles), and per level the pooled gradient
and hessian sums per node, feature and bin, which with the trees are the pooled model's training
statistics. Which rows of a party fall in which node stays with the party.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any

import numpy as np

from misuan.errors import ConfigError, DataError
from misuan.ml.horizontal_binning import agree_edges, bin_values, edges_from_json, edges_to_json
from misuan.ml.horizontal_rounds import FitRounds, checked_rows
from misuan.net.channel import Channel
from misuan.params import check_params, param

__all__ = ["HorizontalGBDT", "HorizontalGBDTParams", "fit_as_aggregator", "fit_as_data_party"]



@dataclasses.dataclass(frozen=True)
class HorizontalGBDTParams:
    """XGBoost's parameters of the same names; every party of a fit must use the same."""

    n_estimators: int = param(10, "trees", ge=1, le=1000)
    max_depth: int = param(4, "levels of each tree", ge=1, le=12)
    learning_rate: float = param(0.3, "shrinkage of each tree's leaf weights (eta)", gt=0.0, le=1.0)
    reg_lambda: float = param(1.0, "L2 penalty on leaf weights", ge=0.0)
    gamma: float = param(0.0, "least loss reduction of a split", ge=0.0)
    min_child_weight: float = param(1.0, "least hessian sum in a child", ge=0.0)
    max_bin: int = param(32, "bins per feature (missing values get one more)", ge=2, le=256)
    fine_bins: int = param(1024, "cells of the fine histogram the bins are cut from", ge=16, le=65536)

    def __post_init__(self) -> None:
        check_params(self, "horizontal_gbdt")


@dataclasses.dataclass
class _Node:
    g: float
    h: float
    feature: int = -1
    cut: int = -1  # rows with bin <= cut go left
    missing_left: bool = True
    left: int = -1
    right: int = -1
    value: float = 0.0


@dataclasses.dataclass
class HorizontalGBDT:
    """The model every party ends with: the agreed bin edges and the trees."""

    edges: list[np.ndarray]  # per feature: the max_bin - 1 cut points
    trees: list[list[_Node]]
    base_margin: float
    rounds: int  # aggregation rounds the fit took
    contributors: list[str]

    @property
    def missing_bin(self) -> int:
        return len(self.edges[0]) + 1 if self.edges else 0

    def bins(self, x: np.ndarray) -> np.ndarray:
        return bin_values(np.asarray(x, dtype=np.float64), self.edges)

    def predict_margin(self, x: np.ndarray) -> np.ndarray:
        b = self.bins(x)
        out = np.full(b.shape[0], self.base_margin)
        for tree in self.trees:
            out += _values(tree, _leaves(tree, b, self.missing_bin))
        return out

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.predict_margin(x)))

    def to_dict(self) -> dict[str, object]:
        return {"edges": edges_to_json(self.edges), "base_margin": self.base_margin, "rounds": self.rounds,
                "contributors": list(self.contributors),
                "trees": [[dataclasses.asdict(nd) for nd in tree] for tree in self.trees]}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], where: str = "the boosting model") -> HorizontalGBDT:
        """The model of :meth:`to_dict`; every child after its parent and every split within the
        features and bins (a :class:`DataError` otherwise), so prediction cannot loop or index past a table."""
        edges = edges_from_json(doc.get("edges"), where)
        raw = doc.get("trees")
        if not isinstance(raw, list) or not all(isinstance(t, list) and t for t in raw):
            raise DataError(f"{where}: trees must be a list of non-empty node lists")
        try:
            trees = [[_node_from_json(nd) for nd in tree] for tree in raw]
            base, rounds = float(doc["base_margin"]), int(doc["rounds"])
            contributors = [str(c) for c in doc.get("contributors", [])]
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{where}: a node or the base margin is malformed") from None
        for t, tree in enumerate(trees):
            for i, nd in enumerate(tree):
                if nd.feature >= 0 and not (nd.feature < len(edges) and -1 <= nd.cut <= len(edges[0])
                                            and i < nd.left < len(tree) and i < nd.right < len(tree)):
                    raise DataError(f"{where}: tree {t} node {i} splits outside the features, bins or nodes")
        return cls(edges, trees, base, rounds, contributors)


def _node_from_json(doc: Mapping[str, Any]) -> _Node:
    """A node of :meth:`HorizontalGBDT.to_dict`, each field converted to its type (KeyError, TypeError or ValueError)."""
    if set(doc) != {f.name for f in dataclasses.fields(_Node)}:
        raise KeyError("node fields")
    return _Node(g=float(doc["g"]), h=float(doc["h"]), feature=int(doc["feature"]), cut=int(doc["cut"]),
                 missing_left=bool(doc["missing_left"]), left=int(doc["left"]), right=int(doc["right"]),
                 value=float(doc["value"]))


def _split_rows(tree: list[_Node], b: np.ndarray, node_of: np.ndarray, level: list[int], missing_bin: int) -> None:
    """Move the rows of ``level``'s split nodes to their children (in place)."""
    for i in level:
        nd = tree[i]
        if nd.feature < 0:
            continue
        here = np.flatnonzero(node_of == i)
        col = b[here, nd.feature]
        go_left = np.where(col == missing_bin, nd.missing_left, col <= nd.cut)
        node_of[here] = np.where(go_left, nd.left, nd.right)


def _leaves(tree: list[_Node], b: np.ndarray, missing_bin: int) -> np.ndarray:
    node_of = np.zeros(b.shape[0], dtype=np.int64)
    level = [0]
    while level:
        _split_rows(tree, b, node_of, level, missing_bin)
        level = [c for i in level if tree[i].feature >= 0 for c in (tree[i].left, tree[i].right)]
    return node_of


def _values(tree: list[_Node], node_of: np.ndarray) -> np.ndarray:
    return np.array([nd.value for nd in tree])[node_of]


def _best_split(hist: np.ndarray, g: float, h: float, p: HorizontalGBDTParams) -> tuple[float, int, int, bool]:
    """(gain, feature, cut, missing_left) of the best split of a node from its ``(d, max_bin + 1, 2)``
    pooled histogram; gain <= 0 when none is worth making."""
    lam = p.reg_lambda
    present = hist[:, :-1, :]
    miss = hist[:, -1, :]  # (d, 2)
    # cut k: present bins 0..k go left; k = -1 (none) and k = max_bin - 1 (all) are the "missing vs
    # present" candidates, with the missing values on the other side
    d = hist.shape[0]
    left = np.concatenate([np.zeros((d, 1, 2)), np.cumsum(present, axis=1)], axis=1)
    parent = g * g / (h + lam)
    best = (0.0, -1, -1, True)
    for missing_left in (True, False):
        gl = left[:, :, 0] + (miss[:, None, 0] if missing_left else 0.0)
        hl = left[:, :, 1] + (miss[:, None, 1] if missing_left else 0.0)
        gr, hr = g - gl, h - hl
        # both sides non-empty (with lambda = 0 and min_child_weight = 0 an empty side is 0/0)
        ok = (hl >= p.min_child_weight) & (hr >= p.min_child_weight) & (hl + lam > 0) & (hr + lam > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            gain = 0.5 * (gl * gl / (hl + lam) + gr * gr / (hr + lam) - parent) - p.gamma
        gain = np.where(ok, gain, -np.inf)
        f, k = np.unravel_index(int(np.argmax(gain)), gain.shape)
        if gain[f, k] > best[0] + 1e-12:
            best = (float(gain[f, k]), int(f), int(k) - 1, missing_left)
    return best


def _level_hist(b: np.ndarray, g: np.ndarray, h: np.ndarray, slot: np.ndarray, k: int, nb: int) -> np.ndarray:
    """Gradient and hessian sums per (node of the level, feature, bin) over this party's rows;
    ``slot``: each row's node's place in the level (-1: a row at a leaf)."""
    d = b.shape[1]
    rows = np.flatnonzero(slot >= 0)
    cell = ((slot[rows, None] * d + np.arange(d)[None, :]) * (nb + 1) + b[rows]).reshape(-1)
    size = k * d * (nb + 1)
    out = np.zeros((k, d, nb + 1, 2))
    out[..., 0] = np.bincount(cell, np.repeat(g[rows], d), minlength=size).reshape(k, d, nb + 1)
    out[..., 1] = np.bincount(cell, np.repeat(h[rows], d), minlength=size).reshape(k, d, nb + 1)
    return out.reshape(-1)


def _fit(rnd: FitRounds, x: np.ndarray, y: np.ndarray, n_features: int, p: HorizontalGBDTParams) -> HorizontalGBDT:
    """The fit, the same at every party; at the aggregator ``x`` and ``y`` have no rows (its local
    vectors are zeros it does not send)."""
    d, nb = n_features, p.max_bin

    # 1. moments, 2. fine histograms -> the same bin edges everywhere
    edges = agree_edges(rnd, x, p.max_bin, p.fine_bins)
    model = HorizontalGBDT(edges, [], 0.0, 0, [])
    missing = model.missing_bin
    b = model.bins(x)
    margin = np.zeros(b.shape[0])
    for _ in range(p.n_estimators):
        prob = 1.0 / (1.0 + np.exp(-margin))
        g = prob - y
        h = prob * (1.0 - prob)
        node_of = np.zeros(b.shape[0], dtype=np.int64)

        tree = [_Node(0.0, 0.0)]  # its sums come with the first level's histograms
        level = [0]
        for _depth in range(p.max_depth):
            k = len(level)

            slot = np.full(len(tree), -1, dtype=np.int64)
            slot[level] = np.arange(k)
            hists = rnd(functools.partial(_level_hist, b, g, h, slot[node_of], k, nb)).reshape(k, d, nb + 1, 2)
            nxt = []
            for j, node in enumerate(level):
                nd = tree[node]
                nd.g, nd.h = (float(v) for v in hists[j, 0].sum(axis=0))  # every row of the node, in some bin
                gain, f, cut, missing_left = _best_split(hists[j], nd.g, nd.h, p)
                if gain <= 0.0:
                    continue
                left = hists[j, f, : cut + 1].sum(axis=0) + (hists[j, f, -1] if missing_left else 0.0)  # cut -1: none
                nd.feature, nd.cut, nd.missing_left = f, cut, missing_left
                nd.left, nd.right = len(tree), len(tree) + 1
                tree.append(_Node(float(left[0]), float(left[1])))
                tree.append(_Node(nd.g - float(left[0]), nd.h - float(left[1])))
                nxt += [nd.left, nd.right]
            _split_rows(tree, b, node_of, level, missing)
            level = nxt
            if not level:
                break
        for nd in tree:
            if nd.feature < 0:
                nd.value = -p.learning_rate * nd.g / (nd.h + p.reg_lambda)
        model.trees.append(tree)
        margin += _values(tree, node_of)
    model.rounds = rnd.rounds
    model.contributors = list(rnd.contributors or [])
    return model


def _context(n_features: int, p: HorizontalGBDTParams) -> str:
    return f"horizontal-gbdt v1 features={n_features} " + " ".join(f"{k}={v!r}" for k, v in dataclasses.asdict(p).items())


def fit_as_data_party(
    chan: Channel, x: np.ndarray, y: np.ndarray, *, aggregator: str, data_parties: list[str],
    params: HorizontalGBDTParams | None = None, round_timeout_s: float = 60.0, step: str = "hgb",
) -> HorizontalGBDT:
    """Grow the model as one of ``data_parties`` on its own rows ``x`` (NaN: missing) and 0/1 labels ``y``."""
    xa, ya = checked_rows(x, y, missing=True)
    p = params or HorizontalGBDTParams()
    rounds = FitRounds(chan, aggregator=aggregator, data_parties=data_parties, step=step,
                       context=_context(xa.shape[1], p), round_timeout_s=round_timeout_s)
    return _fit(rounds, xa, ya, xa.shape[1], p)


def fit_as_aggregator(
    chan: Channel, n_features: int, *, data_parties: list[str], params: HorizontalGBDTParams | None = None,
    round_timeout_s: float = 60.0, step: str = "hgb",
) -> HorizontalGBDT:
    """Aggregate every round of the fit and follow the same decisions (the aggregator holds no rows)."""
    if n_features < 1:
        raise ConfigError("the model needs at least one feature")
    p = params or HorizontalGBDTParams()
    rounds = FitRounds(chan, aggregator=chan.party, data_parties=data_parties, step=step,
                       context=_context(n_features, p), round_timeout_s=round_timeout_s)
    return _fit(rounds, np.empty((0, n_features)), np.empty(0), n_features, p)
