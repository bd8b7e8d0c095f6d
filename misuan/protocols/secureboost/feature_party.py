"""A feature party: :class:`FeatureParty` (its features, bins and splits; no I/O) and its drivers.

:func:`train_feature_party` sends the schema, takes the label party's public key and then serves
its commands until :class:`TrainEnd`: a new tree's ciphertexts, a level's histograms, the partition
of the nodes split on its features, split decisions on the eval set. Every command is checked
(array kinds, shapes, ranges, sorted unique rows, ciphertext sizes) before use.
:func:`predict_feature_party` answers a prediction: per tree the leaves its splits allow for each
row (leaf-set mode), or, only when its own ``prediction_mode`` is ``"nodes"``, every split decision.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from misuan.crypto.he import PublicKey, public_key_from_wire
from misuan.crypto.ot import POINT_BYTES
from misuan.crypto.ot_extension import BASE_OTS, ExtensionReceiver, chunks_of
from misuan.crypto.pool import WorkerPool
from misuan.errors import ConfigError, DataError, MalformedMessageError
from misuan.net.channel import Channel
from misuan.protocols.secureboost import disclosures
from misuan.protocols.secureboost.binning import as_matrix, binned_features
from misuan.protocols.secureboost.histogram import HistogramWorker, load_shards, node_histograms
from misuan.protocols.secureboost.messages import (
    STEP,
    DecisionRequest,
    Decisions,
    HistogramReply,
    LeafSets,
    LevelPlan,
    OtBase,
    OtColumns,
    OtPoints,
    Schema,
    Setup,
    SplitReply,
    SplitRequest,
    TrainEnd,
    TreeStart,
    check_array,
    check_range,
)
from misuan.protocols.secureboost.model import (
    MODEL_VERSION,
    TrainResult,
    decisions_for,
    leaf_sets_for,
    trees_of_shape,
)
from misuan.protocols.secureboost.params import MIN_KEY_BITS, BoostingParams, PredictionMode
from misuan.protocols.secureboost.shares import OT_KEY_BYTES_LIMIT, FeatureShares, choice_bits, key_bytes

__all__ = ["FeatureParty", "predict_feature_party", "train_feature_party"]


def _groups_by_position(positions: np.ndarray, n_nodes: int) -> list[np.ndarray]:
    """Rows of each node (ascending) from a row -> node-index vector."""
    order = np.argsort(positions, kind="stable")
    counts = np.bincount(positions[positions >= 0], minlength=n_nodes)
    start = int(np.sum(positions < 0))  # rows in no node sort first
    return list(np.split(order[start:], np.cumsum(counts)[:-1]))


class FeatureParty:
    """One feature party's state across a training: its binned features, the current tree and level, its splits.

    Each method takes one message of the label party and gives the reply (if any); nothing here
    talks to a channel. Call :meth:`close` to stop the worker processes :meth:`accept_setup` starts (HE histograms).
    Of ``params`` a feature party uses its own binning (``max_bin``), cores (``n_jobs``), the
    monotone constraints of its own features (``monotone_constraints``: names of other parties'
    features are ignored) and what it agrees to tell at evaluation (``prediction_mode``); the
    trees, their sampling and the key are the label party's choice.
    """

    def __init__(self, X: Any, params: BoostingParams | None = None, *, X_eval: Any = None) -> None:
        self.params = params if params is not None else BoostingParams()
        # only the bin codes (a byte per row and feature) are kept, not the floats
        self.binner, self.bins, self.names = binned_features(X, self.params.max_bin)
        self.X_eval = None if X_eval is None else as_matrix(X_eval)[0]
        self.n, self.n_features = self.bins.shape
        self.n_bins = self.binner.n_bins
        self.splits: list[dict[str, Any]] = []  # the model part: one entry per split node on these features
        self.shape = np.zeros((0, 4), dtype=np.int32)  # the kept trees' shapes, from TrainEnd
        self.n_trees = 0
        self.history: list[dict[str, float]] = []
        self.tree = -1
        self.sampled = np.ones(self.n_features, dtype=bool)
        self.level_rows: list[np.ndarray] = []
        self.tree_rows = np.zeros(0, dtype=bool)  # the current tree's rows (HE: those with a ciphertext)
        self.level_ids = np.zeros(0, dtype=np.int32)
        self.compute: list[int] = []
        self.hist_seconds = 0.0
        self.per_ct = 0
        self.loaded = False  # whether the current tree's gradients (ciphertexts or corrections) are in
        self.method = ""  # "he" or "ot", from the label party's setup
        self._public: PublicKey | None = None
        self._pool: WorkerPool | None = None
        self._extension: ExtensionReceiver | None = None
        self._shares: FeatureShares | None = None

    @property
    def public(self) -> PublicKey:
        if self._public is None:
            raise MalformedMessageError("a SecureBoost command came before the label party's public key")
        return self._public

    @property
    def pool(self) -> WorkerPool:
        if self._pool is None:
            raise MalformedMessageError("a SecureBoost command came before the label party's public key")
        return self._pool

    def schema(self) -> Schema:
        mono = [self.params.monotone_constraints.get(nm, 0) for nm in self.names]
        return Schema(self.n, self.names, np.array(self.n_bins, dtype=np.int32), np.array(mono, dtype=np.int8))

    def accept_setup(self, setup: Setup) -> OtBase | None:
        """Take the label party's setup: its HE public key (at least 2048 bits; starts the histogram
        workers), or an OT-extension session (returns this party's base-OT message)."""
        if setup.histograms == "he":
            self.accept_key(setup)
            return None
        if setup.histograms != "ot":
            raise MalformedMessageError(f"unknown histogram method {setup.histograms!r}: 'ot' or 'he'")
        session = check_array(setup.session, "OT-extension session", "u", (16,))
        if session.dtype != np.uint8:
            raise MalformedMessageError("the OT-extension session must be uint8")
        if self.params.histograms == "he":
            raise MalformedMessageError("the label party asks for OT histograms; this party's histograms = 'he' allows "
                                        "only HE (set histograms = 'auto' or 'ot' to allow them)")
        if key_bytes(self.n, self.n_bins) > OT_KEY_BYTES_LIMIT:
            raise ConfigError(f"OT histograms would need {key_bytes(self.n, self.n_bins) / 2**30:.1f} GiB of keys on this "
                              f"party, over the {OT_KEY_BYTES_LIMIT >> 30} GiB limit: set histograms = 'he'")
        self.method = "ot"
        self._extension = ExtensionReceiver(choice_bits(self.bins, self.n_bins), session.tobytes())
        return OtBase(np.frombuffer(self._extension.base_message, dtype=np.uint8))

    def accept_key(self, setup: Setup) -> PublicKey:
        """Check the label party's public key (at least 2048 bits) and start the histogram workers with it."""
        pub = public_key_from_wire(setup.public_key)
        if pub.bits < MIN_KEY_BITS:
            raise MalformedMessageError(f"the label party sent a {pub.bits}-bit key; SecureBoost requires at least {MIN_KEY_BITS} bits")
        self._public = pub
        self.method = "he"
        init = (dict(pub.to_wire()), self.bins.tobytes(), self.bins.shape, self.n_bins)
        self._pool = WorkerPool(HistogramWorker, init, self.params.n_jobs if self.n >= 2000 else 1)
        return pub

    def ot_columns(self, msg: OtPoints) -> Iterator[OtColumns]:
        """The OT extension's columns, chunk by chunk, for the label party's base-OT points; then this
        party's keys are ready."""
        ext = self._extension
        if ext is None:
            raise MalformedMessageError("base-OT points came without an OT-extension setup")
        points = check_array(msg.points, "base-OT points", "u", (BASE_OTS, POINT_BYTES))
        if points.dtype != np.uint8:
            raise MalformedMessageError("base-OT points must be uint8")
        ext.accept_base_points([bytes(row) for row in points])
        for start, stop in chunks_of(ext.n):
            yield OtColumns(start, ext.columns(start, stop))
        self._shares = FeatureShares(ext.keys, self.bins, self.n_bins, ext.session)
        self._extension = None

    @property
    def ot_n(self) -> int:
        """OTs of the extension: one per row, feature and bin."""
        return self.n * int(sum(self.n_bins))

    def start_tree(self, cmd: TreeStart) -> None:
        """Take a new tree's sampled features and (unless label only) its rows' gradient ciphertexts."""
        if cmd.tree != self.tree + 1:
            raise MalformedMessageError(f"tree {cmd.tree} announced after tree {self.tree}")
        if self.tree >= 0:
            self.history.append({"tree": float(self.tree), "histogram_seconds": self.hist_seconds})
        self.tree, self.hist_seconds, self.per_ct, self.loaded = cmd.tree, 0.0, 0, False
        self.sampled = check_array(cmd.features, "sampled features", "b", (self.n_features,))
        if cmd.label_only:
            return
        rows = check_array(cmd.rows, "tree rows", "iu")
        check_range(rows, 0, self.n, "tree rows")
        if len(rows) == 0 or np.any(np.diff(rows) <= 0):
            raise MalformedMessageError("tree rows must be non-empty, sorted and unique")
        if self.method == "ot":
            if self._shares is None:
                raise MalformedMessageError("a tree started before the OT extension finished")
            self._shares.start_tree(cmd.tree, rows.astype(np.int64), self.sampled, cmd.corrections)
            self.loaded = True
            return
        pub = self.public
        cts = check_array(cmd.ciphertexts, "gradient ciphertexts", "S", (len(rows),))
        if cts.dtype.itemsize != pub.ciphertext_bytes:
            raise MalformedMessageError(f"gradient ciphertexts must be S{pub.ciphertext_bytes}")
        if not 1 <= cmd.slot_bits <= pub.plaintext_bits // 2 or not 1 <= cmd.per_ct * 2 * cmd.slot_bits <= pub.plaintext_bits:
            raise MalformedMessageError("slot_bits / per_ct do not fit the key's plaintext space")
        raw = np.ascontiguousarray(cts).view(np.uint8).tobytes()
        load_shards(self.pool, rows.astype(np.int64), raw, pub.ciphertext_bytes, int(cmd.slot_bits), int(cmd.per_ct))
        self.tree_rows = np.zeros(self.n, dtype=bool)
        self.tree_rows[rows] = True
        self.per_ct = int(cmd.per_ct)
        self.loaded = True

    def start_level(self, plan: LevelPlan) -> None:
        """Take a level's instance space (the rows of each node) and the nodes to compute."""
        if not self.loaded:
            raise MalformedMessageError("level plan for a tree without gradients")
        self.level_ids = check_array(plan.node_ids, "node ids", "iu")
        positions = check_array(plan.positions, "node positions", "iu", (self.n,))
        check_range(positions, -1, len(self.level_ids), "node positions")
        compute = check_array(plan.compute, "nodes to compute", "iu")
        check_range(compute, 0, len(self.level_ids), "nodes to compute")
        if self.method == "he" and not bool(np.all(self.tree_rows[positions >= 0])):
            raise MalformedMessageError("a node holds rows that have no gradient ciphertext in this tree")
        self.level_rows = _groups_by_position(positions.astype(np.int64), len(self.level_ids))
        self.compute = compute.tolist()

    def histograms(self) -> HistogramReply:
        """Per wanted node, the sampled features' per-bin sums: sums of this party's shares (OT), or
        encrypted, packed, re-randomised (HE)."""
        h0 = time.perf_counter()
        if self._shares is not None:
            shares = self._shares.node_sums([self.level_rows[i] for i in self.compute])
            self.hist_seconds += time.perf_counter() - h0
            return HistogramReply(np.zeros(0, dtype="S1"), shares)
        feats = [f for f in range(self.n_features) if self.sampled[f]]
        body = node_histograms(self.pool, self.level_rows, self.compute, feats, self.n_bins, self.per_ct, self.public)
        self.hist_seconds += time.perf_counter() - h0
        return HistogramReply(body, np.zeros((0, 0, 2), dtype=np.uint64))

    def split(self, req: SplitRequest) -> SplitReply:
        """The rows going left in each node the label party split on one of these features; keeps the split."""
        nodes = check_array(req.nodes, "split nodes", "iu")
        k = len(nodes)
        feats = check_array(req.features, "split features", "iu", (k,))
        bins = check_array(req.bins, "split bins", "iu", (k,))
        default_left = check_array(req.default_left, "split default directions", "b", (k,))
        check_range(nodes, 0, len(self.level_rows), "split nodes")
        check_range(feats, 0, self.n_features, "split features")
        lefts = []
        for i, f, b, d in zip(nodes.tolist(), feats.tolist(), bins.tolist(), default_left.tolist(), strict=True):
            last = self.n_bins[f] - 2  # the last value bin; the next holds the missing values
            # -1: present values all right (missing left); last: all left (missing right); else a cut
            if not -1 <= b <= last or (b == last and d) or (b == -1 and not d):
                raise MalformedMessageError(f"split bin {b} (missing {'left' if d else 'right'}) is not a split of feature {f}")
            fb = self.bins[self.level_rows[i], f]
            lefts.append(np.where(fb == self.n_bins[f] - 1, d, fb <= b))
            threshold = float(self.binner.cuts[f][b]) if 0 <= b < last else None
            self.splits.append({"tree": self.tree, "node": int(self.level_ids[i]), "feature": self.names[f], "threshold": threshold, "default_left": bool(d)})
        left = np.concatenate(lefts) if lefts else np.zeros(0, dtype=bool)
        return SplitReply(left.astype(bool))

    def eval_decisions(self, req: DecisionRequest) -> LeafSets | Decisions:
        """The current tree's answer on the eval rows (early stopping): leaf sets, or decisions if allowed."""
        Xe = self.X_eval
        if req.purpose != "eval" or Xe is None or req.n_rows != Xe.shape[0] or req.tree != self.tree:
            raise MalformedMessageError("unexpected evaluation request: pass the same eval_set rows to every party")
        splits = [sp for sp in self.splits if sp["tree"] == self.tree]
        return answer(req, splits, trees_of_shape(req.shape, [self.tree]), Xe, self.names, self.params.prediction_mode)

    def end(self, msg: TrainEnd) -> None:
        """Keep the splits and shapes of the first ``msg.n_trees`` trees (fewer with early stopping)."""
        if not 0 <= msg.n_trees <= self.tree + 1:
            raise MalformedMessageError(f"TrainEnd keeps {msg.n_trees} trees of {self.tree + 1}")
        self.splits = [sp for sp in self.splits if sp["tree"] < msg.n_trees]
        shapes = trees_of_shape(msg.shape, range(msg.n_trees))
        mine = {(sp["tree"], sp["node"]) for sp in self.splits}
        if not mine <= {(t, nid) for t, children in shapes.items() for nid in children}:
            raise MalformedMessageError("TrainEnd's tree shapes lack split nodes on this party's features")
        self.shape = check_array(msg.shape, "tree shape", "iu").astype(np.int32)
        self.n_trees = msg.n_trees
        if self.tree >= 0:
            self.history.append({"tree": float(self.tree), "histogram_seconds": self.hist_seconds})

    def result(self, party: str, label_party: str) -> TrainResult:
        model = {
            "version": MODEL_VERSION,
            "role": "feature_party",
            "party": party,
            "label_party": label_party,
            "feature_names": self.names,
            "splits": self.splits,
            "n_trees": self.n_trees,
            "shape": self.shape.tolist(),
            "split_count": {nm: sum(1 for sp in self.splits if sp["feature"] == nm) for nm in self.names},
        }
        return TrainResult(model, self.history)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()


# --- drivers ---------------------------------------------------------------------------------------
def train_feature_party(
    chan: Channel, X: Any, label_party: str, params: BoostingParams | None = None, *, X_eval: Any = None,
    step: str = STEP,
) -> TrainResult:
    """Train as a feature party: serve the label party's commands until it ends training.

    ``params``: this party's ``max_bin`` and ``n_jobs`` (see :class:`FeatureParty`; default
    :class:`BoostingParams`). Returns this party's model part: for each split node on its features,
    the feature name, threshold and default direction (the label party never sees them)."""
    me = FeatureParty(X, params, X_eval=X_eval)
    try:
        chan.send(label_party, f"{step}/schema", me.schema())
        chan.disclose(step, disclosures.SCHEMA, chan.party, label_party, (me.n_features,))
        base = me.accept_setup(chan.recv(label_party, f"{step}/cmd", expect=Setup))
        if base is None:
            pub = me.public
            chan.disclose(step, disclosures.PUBLIC_KEY, label_party, chan.party, (), scheme=pub.scheme, bits=pub.bits)
        else:
            _ot_setup(chan, me, base, label_party, step)
        while True:
            cmd = chan.recv(label_party, f"{step}/cmd")
            if isinstance(cmd, TrainEnd):
                me.end(cmd)
                chan.disclose(step, disclosures.TREE_SHAPES, label_party, chan.party, (len(cmd.shape),), purpose="model")
                return me.result(chan.party, label_party)
            _serve(chan, me, cmd, label_party, step)
    finally:
        me.close()


def _ot_setup(chan: Channel, me: FeatureParty, base: OtBase, label_party: str, step: str) -> None:
    """The OT extension as its receiver: base-OT message out, the label party's points in, columns out."""
    chan.disclose(step, disclosures.OT_SESSION, label_party, chan.party, (16,))
    chan.send(label_party, f"{step}/ot", base)
    chan.disclose(step, disclosures.OT_BASE, chan.party, label_party, (POINT_BYTES,))
    points = chan.recv(label_party, f"{step}/cmd", expect=OtPoints)
    chan.disclose(step, disclosures.OT_POINTS, label_party, chan.party, (BASE_OTS,))
    for cols in me.ot_columns(points):
        chan.send(label_party, f"{step}/ot", cols)
    chan.disclose(step, disclosures.OT_COLUMNS, chan.party, label_party, (me.ot_n,))


def _serve(chan: Channel, me: FeatureParty, cmd: object, label_party: str, step: str) -> None:
    """Handle one command of the label party, recording what each side learns."""
    party, tree = chan.party, me.tree
    if isinstance(cmd, TreeStart):
        me.start_tree(cmd)
        if not cmd.label_only:
            if me.method == "he":
                chan.disclose(step, disclosures.GRADIENTS, label_party, party, (len(cmd.rows),), tree=me.tree)
            else:
                chan.disclose(step, disclosures.MASKED_GRADIENTS, label_party, party, cmd.corrections.shape[:2], tree=me.tree)
            if len(cmd.rows) < me.n:
                chan.disclose(step, disclosures.SAMPLED_ROWS, label_party, party, (len(cmd.rows),), tree=me.tree)
    elif isinstance(cmd, LevelPlan):
        me.start_level(cmd)
        chan.disclose(step, disclosures.NODE_ROWS, label_party, party, (me.n,), tree=tree, depth=int(cmd.depth), nodes=len(me.level_ids))
        chan.send(label_party, f"{step}/hist", me.histograms())
        shape = (len(me.compute), me.n_features)
        chan.disclose(step, disclosures.HISTOGRAMS, party, label_party, shape, tree=tree, depth=int(cmd.depth))
    elif isinstance(cmd, SplitRequest):
        reply = me.split(cmd)
        chan.disclose(step, disclosures.SPLIT_CHOICE, label_party, party, (len(cmd.nodes), 3), tree=tree)
        chan.send(label_party, f"{step}/split", reply)
        chan.disclose(step, disclosures.PARTITION, party, label_party, (len(reply.left),), tree=tree)
    elif isinstance(cmd, DecisionRequest):
        chan.disclose(step, disclosures.TREE_SHAPES, label_party, party, (len(cmd.shape),), purpose="eval", tree=tree)
        answer_ = me.eval_decisions(cmd)
        chan.send(label_party, f"{step}/decisions", answer_)
        _disclose_answer(chan, step, label_party, answer_, "eval")
    else:
        raise MalformedMessageError(f"unexpected SecureBoost command {type(cmd).__name__}")


def answer(
    req: DecisionRequest, splits: list[dict[str, Any]], shapes: dict[int, dict[int, tuple[int, int]]], X: np.ndarray,
    names: list[str], allowed: PredictionMode,
) -> LeafSets | Decisions:
    """This party's answer to ``req`` on ``X``: leaf sets, or its split decisions if it allows the per-node mode."""
    if req.mode == "leaves":
        return leaf_sets_for(splits, shapes, X, names)
    if req.mode == "nodes" and allowed == "nodes":
        return decisions_for(splits, X, names)
    raise MalformedMessageError(
        f"the label party asks for {req.mode!r} answers; this party's prediction_mode is {allowed!r}"
        + (" (set prediction_mode = 'nodes' on this party to allow split decisions)" if req.mode == "nodes" else "")
    )


def _disclose_answer(chan: Channel, step: str, label_party: str, reply: LeafSets | Decisions, purpose: str) -> None:
    if isinstance(reply, LeafSets):
        chan.disclose(step, disclosures.LEAF_SETS, chan.party, label_party, (reply.masks.shape[0], len(reply.trees)), purpose=purpose)
    else:
        chan.disclose(step, disclosures.DECISIONS, chan.party, label_party, reply.left.shape, purpose=purpose)


def predict_feature_party(
    chan: Channel, model: dict[str, Any], X: Any, step: str = STEP, prediction_mode: PredictionMode = "leaves"
) -> None:
    """Joint batch prediction, feature party side: answer the label party's request on ``X``.

    ``prediction_mode`` is this party's consent: ``"leaves"`` answers only with leaf sets,
    ``"nodes"`` also with every split decision (which exact TreeSHAP explanations need).
    """
    Xf, _ = as_matrix(X)
    names = list(model["feature_names"])
    if Xf.shape[1] != len(names):
        raise DataError(f"prediction needs this party's {len(names)} features, got {Xf.shape[1]}")
    label_party = model["label_party"]
    req = chan.recv(label_party, f"{step}/cmd", expect=DecisionRequest)
    if req.purpose != "predict" or req.n_rows != Xf.shape[0]:
        raise MalformedMessageError(f"label party asks decisions for {req.n_rows} rows, this party has {Xf.shape[0]}")
    shapes = trees_of_shape(np.array(model["shape"], dtype=np.int32).reshape(-1, 4), range(int(model["n_trees"])))
    reply = answer(req, list(model["splits"]), shapes, Xf, names, prediction_mode)
    chan.send(label_party, f"{step}/decisions", reply)
    _disclose_answer(chan, step, label_party, reply, "predict")
