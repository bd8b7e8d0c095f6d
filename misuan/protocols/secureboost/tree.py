"""One tree as the label party grows it, level by level: :class:`TreeGrower` (no I/O).

Per level the grower gives the level's instance space (:class:`LevelPlan`) for the feature
parties, takes their encrypted histograms of the nodes it asked for, derives each sibling's
histogram by subtraction (parent minus the computed child), finds the best split of every node
over all parties' features, asks each feature party for the partition of the nodes split on its
features (:class:`SplitRequest`) and takes the reply. The driver
(:func:`misuan.protocols.secureboost.label_party.train_label_party`) moves the messages.

Every node carries its weight bounds (monotone constraints, :mod:`.split`); every histogram and
partition a feature party returns is checked against the sums the label party knows
(:mod:`.checks`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from misuan.protocols.secureboost.binning import PartyBins
from misuan.protocols.secureboost.checks import check_histogram_totals, check_partition_sums, codec_rounded
from misuan.protocols.secureboost.messages import (
    HistogramReply,
    LevelPlan,
    SplitReply,
    SplitRequest,
    check_array,
)
from misuan.protocols.secureboost.params import BoostingParams
from misuan.protocols.secureboost.split import (
    Bounds,
    NodeStats,
    Split,
    best_split,
    child_bounds,
    gain_given_weight,
    node_weight,
    plain_histogram,
)

__all__ = ["PeerHistograms", "TreeGrower"]

Histogram = tuple[np.ndarray, np.ndarray]  # flat per-bin gradient and hessian sums of one party


class PeerHistograms(Protocol):
    """How the label party reads a feature party's histogram reply (HE: :class:`.histogram.HistogramDecoder`,
    OT: :class:`.shares.ShareDecoder`)."""

    def prepare(self, peer: str, node_rows: list[np.ndarray]) -> None: ...

    def decode(self, reply: HistogramReply, fb: PartyBins, n_nodes: int) -> list[Histogram]: ...


@dataclasses.dataclass
class _Node:
    id: int
    depth: int
    rows: np.ndarray
    g: float
    h: float
    weight: float  # unscaled leaf weight, clipped to the parent's bounds (XGBoost's)
    bounds: Bounds  # this node's own bounds, for its children's weights
    hists: dict[str, Histogram] = dataclasses.field(default_factory=dict)
    sibling: int = -1  # index (in the level) of the sibling whose histogram is computed
    parent_hists: dict[str, Histogram] | None = None


class TreeGrower:
    """The label party's state while it grows one tree; methods take and give the tree's messages."""

    def __init__(
        self, params: BoostingParams, g: np.ndarray, h: np.ndarray, rows: np.ndarray,
        own: PartyBins, own_bins: np.ndarray, own_cuts: Sequence[np.ndarray],
        peers: Sequence[PartyBins], decoder: PeerHistograms, timing: dict[str, float],
    ) -> None:
        self.p = params
        self.g, self.h = g, h
        self.n = len(g)
        self.own, self.own_bins, self.own_cuts = own, own_bins, own_cuts
        self.peers = {pi.party: pi for pi in peers}  # the parties asked for histograms (none: label only)
        self.decoder = decoder
        self.timing = timing  # phase seconds of this tree: the grower adds decrypt and split_finding
        # any constrained feature switches every gain to XGBoost's clipped-weight form
        self.constrained = any(bool(np.any(fb.monotone != 0)) for fb in (own, *peers))
        self.gq, self.hq = codec_rounded(g, params.frac_bits), codec_rounded(h, params.frac_bits)
        self.level = [self._child(0, 0, rows, Bounds(), Bounds())]
        self.nodes_out: list[dict[str, Any]] = []
        self.leaf_add = np.zeros(self.n)
        self._next_id = 1
        self._compute: list[int] = []
        self._splits: list[Split | None] = []
        self._lefts: dict[int, np.ndarray] = {}
        self._requested: dict[str, list[int]] = {}

    @property
    def growing(self) -> bool:
        return bool(self.level)

    @property
    def depth(self) -> int:
        return self.level[0].depth

    def level_plan(self) -> LevelPlan | None:
        """The level's instance space and the nodes whose histograms are wanted; None at ``max_depth``.

        Wanted are the root, then the smaller of each pair of siblings (at ``2j, 2j + 1``): the other
        is its parent minus it.
        """
        level, depth = self.level, self.depth
        if depth == 0:
            self._compute = [0]
        else:
            pairs = range(len(level) // 2)
            self._compute = [2 * j if len(level[2 * j].rows) <= len(level[2 * j + 1].rows) else 2 * j + 1 for j in pairs]
        if depth >= self.p.max_depth:
            return None
        positions = np.full(self.n, -1, dtype=np.int32)
        for i, nd in enumerate(level):
            positions[nd.rows] = i
        node_ids = np.array([nd.id for nd in level], dtype=np.int32)
        return LevelPlan(depth, node_ids, positions, np.array(self._compute, dtype=np.int32))

    @property
    def n_computed(self) -> int:
        """Nodes of the level whose histograms the feature parties compute."""
        return len(self._compute)

    def own_histograms(self) -> None:
        """The label party's own features, in plaintext, for every node of the level (cheap); then what it
        can do on the feature parties' histograms before their replies arrive."""
        for nd in self.level:
            nd.hists[self.own.party] = plain_histogram(self.own_bins, self.own, nd.rows, self.g, self.h)
        d0 = time.perf_counter()
        for peer in self.peers:
            self.decoder.prepare(peer, [self.level[i].rows for i in self._compute])
        self.timing["decrypt"] += time.perf_counter() - d0

    def take_histograms(self, peer: str, reply: HistogramReply) -> None:
        """Decrypt ``peer``'s histograms of the wanted nodes."""
        d0 = time.perf_counter()
        fb = self.peers[peer]
        decoded = self.decoder.decode(reply, fb, len(self._compute))
        sampled = [f for f in range(len(fb.n_bins)) if fb.mask[f]]
        for i, hist in zip(self._compute, decoded, strict=True):
            nd = self.level[i]
            g_tot, h_tot = float(self.gq[nd.rows].sum()), float(self.hq[nd.rows].sum())
            check_histogram_totals(peer, nd.id, *hist, fb.offsets, sampled, g_tot, h_tot, self.p.frac_bits)
            nd.hists[peer] = hist
        self.timing["decrypt"] += time.perf_counter() - d0

    def find_splits(self) -> None:
        """The best split of every node of the level over all parties' features (None: a leaf)."""
        splittable = self.depth < self.p.max_depth
        if splittable:
            self._subtract_histograms()
        s0 = time.perf_counter()
        self._splits = [self._best_of(nd) if splittable else None for nd in self.level]
        self.timing["split_finding"] += time.perf_counter() - s0
        # partitions of the label party's own splits, computed here; the others come by request
        self._lefts = {}
        for i, (nd, sp) in enumerate(zip(self.level, self._splits, strict=True)):
            if sp is not None and sp.party == self.own.party:
                b = self.own_bins[nd.rows, sp.feature]
                miss = b == self.own.n_bins[sp.feature] - 1
                self._lefts[i] = np.where(miss, sp.default_left, b <= sp.bin)

    def _subtract_histograms(self) -> None:
        for i, nd in enumerate(self.level):
            if i not in self._compute and nd.parent_hists is not None:
                sib = self.level[nd.sibling]
                for name in self.peers:
                    pg, ph = nd.parent_hists[name]
                    sg, sh = sib.hists[name]
                    nd.hists[name] = (pg - sg, ph - sh)

    def _best_of(self, nd: _Node) -> Split | None:
        best: Split | None = None
        lam = self.p.reg_lambda
        root_gain = float(gain_given_weight(nd.g, nd.h, nd.weight, lam)) if self.constrained else nd.g * nd.g / (nd.h + lam)
        stats = NodeStats(nd.g, nd.h, root_gain, nd.bounds)
        cands = [best_split(*nd.hists[self.own.party], self.own, stats, self.p, self.constrained)]
        for name, pi in self.peers.items():
            G, H = nd.hists[name]
            cands.append(best_split(G, H, pi, stats, self.p, self.constrained))
        for c in cands:
            if c is not None and (best is None or c.gain > best.gain):
                best = c
        if best is not None and not (best.gain > max(self.p.gamma, 1e-6)):
            best = None
        return best

    def split_request(self, peer: str) -> SplitRequest:
        """The level's nodes split on ``peer``'s features: its feature, bin and default direction each."""
        mine = [(i, sp) for i, sp in enumerate(self._splits) if sp is not None and sp.party == peer]
        self._requested[peer] = [i for i, _ in mine]
        return SplitRequest(
            np.array(self._requested[peer], dtype=np.int32),
            np.array([sp.feature for _, sp in mine], dtype=np.int32),
            np.array([sp.bin for _, sp in mine], dtype=np.int32),
            np.array([sp.default_left for _, sp in mine], dtype=bool),
        )

    def take_partition(self, peer: str, reply: SplitReply) -> int:
        """Which rows of each node split on ``peer``'s features go left; returns the rows told.

        The rows sent left must add up to the chosen bins' sums (:func:`.checks.check_partition_sums`).
        """
        idx = self._requested.pop(peer)
        total = sum(len(self.level[i].rows) for i in idx)
        left = check_array(reply.left, "split partition", "b", (total,))
        start = 0
        for i in idx:
            nd, sp = self.level[i], self._splits[i]
            m = len(nd.rows)
            part = left[start : start + m]
            if sp is not None:
                lrows = nd.rows[part]
                check_partition_sums(
                    peer, nd.id, float(self.gq[lrows].sum()), float(self.hq[lrows].sum()), sp.left_g, sp.left_h,
                    len(lrows), m, self.p.frac_bits,
                )
            self._lefts[i] = part
            start += m
        return total

    def next_level(self) -> None:
        """Turn the level's nodes into leaves or split nodes; their children make the next level."""
        nxt: list[_Node] = []
        for i, (nd, sp) in enumerate(zip(self.level, self._splits, strict=True)):
            if sp is None:
                w = float(nd.weight * self.p.learning_rate)
                self.nodes_out.append({"id": nd.id, "leaf": w, "cover": nd.h})
                self.leaf_add[nd.rows] = w
                continue
            lm = self._lefts[i]
            lid, rid = self._next_id, self._next_id + 1
            self._next_id += 2
            self.nodes_out.append(self._split_node(nd, sp, lid, rid))
            children = self._children(nd, sp, (lid, nd.rows[lm]), (rid, nd.rows[~lm]))
            children[0].sibling, children[1].sibling = len(nxt) + 1, len(nxt)
            nxt += children
        for nd in self.level:  # free the parent's histograms as soon as the children have theirs
            nd.parent_hists = None
        self.level = nxt

    def _child(
        self, nid: int, depth: int, rows: np.ndarray, parent_bounds: Bounds, bounds: Bounds,
        parent_hists: dict[str, Histogram] | None = None,
    ) -> _Node:
        g, h = float(self.g[rows].sum()), float(self.h[rows].sum())
        weight = node_weight(g, h, self.p, parent_bounds)
        return _Node(nid, depth, rows, g, h, weight, bounds, parent_hists=parent_hists)

    def _children(self, nd: _Node, sp: Split, left: tuple[int, np.ndarray], right: tuple[int, np.ndarray]) -> list[_Node]:
        """The two children of ``nd``: weights clipped to its bounds, bounds narrowed by a constrained feature."""
        fb = self.own if sp.party == self.own.party else self.peers[sp.party]
        hists = dict(nd.hists)
        lw = node_weight(float(self.g[left[1]].sum()), float(self.h[left[1]].sum()), self.p, nd.bounds)
        rw = node_weight(float(self.g[right[1]].sum()), float(self.h[right[1]].sum()), self.p, nd.bounds)
        lb, rb = child_bounds(nd.bounds, int(fb.monotone[sp.feature]), lw, rw)
        return [
            self._child(cid, nd.depth + 1, rows, nd.bounds, b, hists) for (cid, rows), b in ((left, lb), (right, rb))
        ]

    def _split_node(self, nd: _Node, sp: Split, lid: int, rid: int) -> dict[str, Any]:
        node: dict[str, Any] = {
            "id": nd.id, "party": sp.party, "feature": sp.feature, "default_left": sp.default_left,
            "left": lid, "right": rid, "gain": sp.gain, "cover": nd.h,
        }
        if sp.party == self.own.party:
            node["feature_name"] = self.own.names[sp.feature]
            cuts = self.own_cuts[sp.feature]
            # no cut: "missing vs present" (every present value on the side opposite the missing ones)
            node["threshold"] = float(cuts[sp.bin]) if 0 <= sp.bin < len(cuts) else None
        else:
            node["feature_name"] = self.peers[sp.party].names[sp.feature]
        return node

    def tree(self) -> tuple[dict[str, Any], np.ndarray]:
        """The grown tree (nodes by id) and the leaf value it adds to every row."""
        return {"nodes": sorted(self.nodes_out, key=lambda d: d["id"])}, self.leaf_add
