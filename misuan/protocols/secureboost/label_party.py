"""The label party: :class:`LabelParty` (boosting state, no I/O) and its drivers.

:func:`train_label_party` receives every feature party's schema, sends the HE public key, then per
tree sends the encrypted gradients (:class:`TreeStart`), grows the tree level by level with a
:class:`~misuan.protocols.secureboost.tree.TreeGrower`, optionally scores the eval set, and ends
with :class:`TrainEnd` (which carries the kept trees' shapes). :func:`predict_label_party` collects
the feature parties' answers (leaf sets by default, split decisions in the per-node mode) and finds
each row's leaf; :func:`explain_label_party` turns the same answers into per-row feature
contributions (:mod:`.explain`). Every disclosure is recorded from :mod:`.disclosures`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from misuan.crypto.encoding import FixedPointCodec
from misuan.crypto.he import PrivateKey, PublicKey, generate_keypair
from misuan.crypto.ot import POINT_BYTES
from misuan.crypto.ot_extension import BASE_OTS, ExtensionSender, chunks_of
from misuan.crypto.pool import HEWorker, WorkerPool, encrypt_batch
from misuan.errors import ConfigError, DataError, InconsistentPeerError, MalformedMessageError, ProtocolError
from misuan.net.channel import Channel
from misuan.protocols.secureboost import disclosures
from misuan.protocols.secureboost.binning import PartyBins, as_matrix, binned_features
from misuan.protocols.secureboost.explain import ContributionMethod, contributions
from misuan.protocols.secureboost.histogram import HistogramDecoder
from misuan.protocols.secureboost.loss import base_margin, grad_hess, metric
from misuan.protocols.secureboost.messages import (
    STEP,
    DecisionRequest,
    Decisions,
    HistogramReply,
    LeafSets,
    OtBase,
    OtColumns,
    OtPoints,
    Schema,
    Setup,
    SplitReply,
    TrainEnd,
    TreeStart,
    check_array,
    check_range,
)
from misuan.protocols.secureboost.model import (
    MODEL_VERSION,
    Answers,
    TrainResult,
    answers_of,
    importance_of,
    leaf_values,
    shape_of,
)
from misuan.protocols.secureboost.params import MAX_BIN_LIMIT, MIN_KEY_BITS, PredictionMode, SecureBoostParams
from misuan.protocols.secureboost.shares import (
    OT_KEY_BYTES_LIMIT,
    LabelShares,
    ShareDecoder,
    encode_pairs,
    key_bytes,
)
from misuan.protocols.secureboost.tree import PeerHistograms, TreeGrower

__all__ = ["LabelParty", "explain_label_party", "predict_label_party", "train_label_party"]

_PHASES = ("encrypt", "decrypt", "wait_histograms", "split_finding")


def sample_features(rng: np.random.Generator, rate: float, counts: list[int]) -> list[np.ndarray]:
    """Per party, which of its features a tree may split on: ``rate`` of all parties' features together."""
    total = sum(counts)
    masks = [np.ones(c, dtype=bool) for c in counts]
    if rate >= 1 or total == 0:
        return masks
    keep = np.zeros(total, dtype=bool)
    keep[rng.choice(total, size=max(1, int(round(rate * total))), replace=False)] = True
    return list(np.split(keep, np.cumsum(counts)[:-1]))


class LabelParty:
    """The label party's state across one training: labels, margins, keys, feature parties, trees.

    Its methods take the messages received and give the messages to send; nothing here talks to a
    channel. Call :meth:`close` to stop the worker processes :meth:`setup` starts.
    """

    def __init__(self, name: str, X: Any, y: Any, params: SecureBoostParams, eval_set: tuple[Any, Any] | None = None) -> None:
        p = self.p = params
        self.name = name
        # only the bin codes (a byte per row and feature) are kept, not the floats
        self.binner, self.bins, self.names = binned_features(X, p.max_bin)
        self.n_features = self.bins.shape[1]
        self.y = np.asarray(y, dtype=np.float64).reshape(-1)
        self.n = n = len(self.y)
        if self.bins.shape[0] != n:
            raise DataError(f"label party has {self.bins.shape[0]} feature rows but {n} labels")
        if p.objective == "binary:logistic" and not np.isin(self.y, (0.0, 1.0)).all():
            raise DataError("labels must be 0 or 1 for binary:logistic")
        self.rng = np.random.default_rng(p.random_state)
        self.codec = FixedPointCodec(frac_bits=p.frac_bits, max_abs=1.0, max_terms=max(n, 2))
        self.X_val, self.y_val = self._eval_set(eval_set)
        self.base = base_margin(p.objective, p.base_score, self.y)
        self.margin = np.full(n, self.base)
        self.margin_val = None if self.y_val is None else np.full(len(self.y_val), self.base)
        self.peers: list[PartyBins] = []
        self.trees: list[dict[str, Any]] = []
        self.history: list[dict[str, float]] = []
        self.best_metric = math.inf
        self.best_iter: int | None = None
        self.monotone = np.zeros(self.n_features, dtype=np.int8)
        self._public: PublicKey | None = None
        self._pool: WorkerPool | None = None
        self.histograms = ""  # "ot" or "he", fixed by setup()
        self._extensions: dict[str, ExtensionSender] = {}
        self._shares: dict[str, LabelShares] = {}

    def _eval_set(self, eval_set: tuple[Any, Any] | None) -> tuple[np.ndarray, np.ndarray | None]:
        if eval_set is None:
            return np.zeros((0, self.n_features)), None
        Xv, _ = as_matrix(eval_set[0])
        y_val = np.asarray(eval_set[1], dtype=np.float64).reshape(-1)
        if Xv.shape != (len(y_val), self.n_features):
            raise DataError("eval_set features do not match the training features or labels")
        return Xv, y_val

    @property
    def public(self) -> PublicKey:
        if self._public is None:
            raise RuntimeError("LabelParty.setup() comes first")
        return self._public

    @property
    def pool(self) -> WorkerPool:
        if self._pool is None:
            raise RuntimeError("LabelParty.setup() comes first")
        return self._pool

    @property
    def evaluates(self) -> bool:
        return self.y_val is not None

    def add_feature_party(self, peer: str, schema: Schema) -> PartyBins:
        """Check ``peer``'s schema against the aligned rows and keep its feature names and bin counts."""
        nbins = check_array(schema.n_bins, "schema n_bins", "iu")
        if schema.n_rows != self.n or nbins.shape != (len(schema.feature_names),):
            raise ProtocolError(f"{peer} has {schema.n_rows} rows and {nbins.shape} bin counts; expected {self.n} aligned rows")
        check_range(nbins, 1, MAX_BIN_LIMIT + 3, "schema n_bins")
        names = schema.feature_names
        if len(set(names)) != len(names) or any(not 0 < len(nm) <= 256 for nm in names):
            raise MalformedMessageError(f"{peer}'s feature names must be unique, non-empty and at most 256 characters")
        mono = check_array(schema.monotone, "schema monotone constraints", "iu", nbins.shape)
        check_range(mono, -1, 2, "schema monotone constraints")
        n_bins = [int(v) for v in nbins.tolist()]
        fb = PartyBins(peer, list(names), n_bins, np.ones(len(n_bins), bool), mono.astype(np.int8))
        self.peers.append(fb)
        return fb

    def own_constraints(self) -> np.ndarray:
        """The label party's constraints on its own features, after checking ``monotone_constraints``
        names only known features and agrees with what each feature party declared for its own."""
        declared = dict(self.p.monotone_constraints)
        for fb in self.peers:
            for nm, c in zip(fb.names, fb.monotone.tolist(), strict=True):
                if nm in declared and nm not in self.names and declared.pop(nm) != c:
                    raise ConfigError(f"monotone_constraints: {fb.party} declares {c} for its feature {nm!r}, this party {self.p.monotone_constraints[nm]}")
        unknown = sorted(set(declared) - set(self.names))
        if unknown:
            raise ConfigError(f"monotone_constraints names features no party has: {unknown}")
        return np.array([declared.get(nm, 0) for nm in self.names], dtype=np.int8)

    def histogram_method(self) -> str:
        """``"ot"`` or ``"he"``: the ``histograms`` parameter, ``"auto"`` resolved by the OT keys' size."""
        if self.p.histograms != "auto":
            return self.p.histograms
        fits = all(key_bytes(self.n, pi.n_bins) <= OT_KEY_BYTES_LIMIT for pi in self.peers)
        return "ot" if fits else "he"

    def setup(self, keys: tuple[PublicKey, PrivateKey] | None = None) -> dict[str, Setup]:
        """Each feature party's setup: the HE key pair (``keys``, or a fresh one) and the worker processes
        that hold its private key, or a session id of the OT extension per feature party."""
        p = self.p
        self.monotone = self.own_constraints()
        self.histograms = self.histogram_method()
        if self.histograms == "ot":
            sessions = {pi.party: os.urandom(16) for pi in self.peers}
            self._extensions = {pi.party: ExtensionSender(self.n * pi.width, sessions[pi.party]) for pi in self.peers}
            return {peer: Setup("ot", {}, np.frombuffer(s, dtype=np.uint8)) for peer, s in sessions.items()}
        pub, priv = keys if keys is not None else generate_keypair(p.he_scheme, p.key_bits)
        if pub.bits < MIN_KEY_BITS:
            raise ConfigError(f"SecureBoost needs an HE key of at least {MIN_KEY_BITS} bits, not {pub.bits}")
        self._public = pub
        # wider tables (more memory, longer to build) pay off once there are many rows to encrypt per tree
        window = 14 if self.n >= 50000 else 12 if self.n >= 5000 else 8
        self._pool = WorkerPool(HEWorker, (dict(priv.to_wire()), True, window), p.n_jobs if self.n >= 2000 else 1)
        return {pi.party: Setup("he", dict(pub.to_wire()), np.zeros(0, dtype=np.uint8)) for pi in self.peers}

    def ot_points(self, peer: str, base: OtBase) -> OtPoints:
        """The base-OT points answering ``peer``'s base-OT message (OT histograms)."""
        point = check_array(base.point, "base-OT point", "u", (POINT_BYTES,))
        if point.dtype != np.uint8:
            raise MalformedMessageError("the base-OT point must be uint8")
        points = self._extensions[peer].base_points(point.tobytes())
        self._keep_if_complete(peer)  # a party with no features has no OT to extend
        return OtPoints(np.frombuffer(b"".join(points), dtype=np.uint8).reshape(BASE_OTS, POINT_BYTES))

    def ot_columns(self, peer: str, cols: OtColumns) -> bool:
        """Take one chunk of ``peer``'s OT-extension columns; True once its keys are complete."""
        ext = self._extensions.get(peer)
        if ext is None:
            raise MalformedMessageError(f"{peer} sent OT-extension columns after the last chunk")
        if not isinstance(cols.start, int):
            raise MalformedMessageError("OT-extension chunk start must be an int")
        ext.accept_columns(cols.start, cols.columns)
        return self._keep_if_complete(peer)

    def _keep_if_complete(self, peer: str) -> bool:
        ext = self._extensions[peer]
        if ext.complete:
            fb = next(pi for pi in self.peers if pi.party == peer)
            self._shares[peer] = LabelShares(fb, ext.keys, self.n, ext.session, self.p.frac_bits)
        return ext.complete

    def ot_chunks(self, peer: str) -> int:
        """How many chunks of OT-extension columns ``peer`` sends."""
        return len(chunks_of(self._extensions[peer].n))

    def ot_done(self, peer: str) -> None:
        """Drop the extension's state once ``peer``'s keys are kept."""
        if peer not in self._shares:
            raise MalformedMessageError(f"{peer} sent fewer OT-extension columns than its bins need")
        self._extensions.pop(peer, None)

    def ot_n(self, peer: str) -> int:
        """How many OTs the extension with ``peer`` makes: one per row, feature and bin."""
        return self._extensions[peer].n

    def start_tree(self, t: int) -> tuple[dict[str, TreeStart], TreeGrower]:
        """Gradients of tree ``t``, encrypted for the feature parties, and the grower of the tree."""
        p, n = self.p, self.n
        timing = dict.fromkeys(_PHASES, 0.0)
        g, h = grad_hess(p.objective, self.margin, self.y)
        rows = np.arange(n) if p.subsample >= 1 else np.flatnonzero(self.rng.random(n) < p.subsample)
        if len(rows) == 0:
            rows = np.arange(n)
        masks = sample_features(self.rng, p.colsample_bytree, [self.n_features] + [len(pi.n_bins) for pi in self.peers])
        for pi, mask in zip(self.peers, masks[1:], strict=True):
            pi.mask = mask
        label_only = p.first_tree_label_only and t == 0
        build = self._ot_starts if self.histograms == "ot" else self._he_starts
        starts, decoder = build(t, g, h, rows, label_only, timing)
        own = PartyBins(self.name, self.names, self.binner.n_bins, masks[0], self.monotone)
        grower = TreeGrower(p, g, h, rows, own, self.bins, self.binner.cuts, [] if label_only else self.peers, decoder, timing)
        return starts, grower

    def _he_starts(
        self, t: int, g: np.ndarray, h: np.ndarray, rows: np.ndarray, label_only: bool, timing: dict[str, float],
    ) -> tuple[dict[str, TreeStart], PeerHistograms]:
        """Tree ``t`` with HE histograms: the rows' packed gradient pairs, encrypted once for every feature party."""
        pub, pool = self.public, self.pool
        codec = self._tree_codec(g, rows)
        per_ct = max(1, pub.plaintext_bits // (2 * codec.slot_bits))
        codec.check_fits(pub.plaintext_bits, 2)
        cts: np.ndarray = np.zeros(0, dtype=f"S{pub.ciphertext_bytes}")
        if not label_only and self.peers:
            e0 = time.perf_counter()
            packed = codec.pack([codec.encode(g[rows]), codec.encode(h[rows])])
            cts = np.frombuffer(encrypt_batch(pool, pub, packed), dtype=f"S{pub.ciphertext_bytes}")
            timing["encrypt"] = time.perf_counter() - e0
        none = np.zeros((0, 0, 2), dtype=np.uint64)
        starts = {
            pi.party: TreeStart(t, rows.astype(np.int32), cts, pi.mask, codec.slot_bits, per_ct, label_only, none)
            for pi in self.peers
        }
        return starts, HistogramDecoder(pub, pool, codec, per_ct)

    def _ot_starts(
        self, t: int, g: np.ndarray, h: np.ndarray, rows: np.ndarray, label_only: bool, timing: dict[str, float],
    ) -> tuple[dict[str, TreeStart], PeerHistograms]:
        """Tree ``t`` with OT histograms: each feature party's gradient pairs, one-time padded per sampled feature."""
        e0 = time.perf_counter()
        none_cts = np.zeros(0, dtype="S1")
        starts = {}
        pairs = encode_pairs(g, h, self.p.frac_bits, max(self.n, 2)) if not label_only else np.zeros((0, 2), np.uint64)
        for pi in self.peers:
            corrections = np.zeros((0, 0, 2), dtype=np.uint64)
            if not label_only:
                corrections = self._shares[pi.party].start_tree(t, rows, pairs)
            starts[pi.party] = TreeStart(t, rows.astype(np.int32), none_cts, pi.mask, 0, 0, label_only, corrections)
        timing["encrypt"] = time.perf_counter() - e0
        return starts, ShareDecoder(self._shares)

    def _tree_codec(self, g: np.ndarray, rows: np.ndarray) -> FixedPointCodec:
        """Logistic gradients lie in [-1, 1]; squared-loss ones are scaled to a power of two per tree."""
        if self.p.objective == "binary:logistic":
            return self.codec
        scale = float(max(np.max(np.abs(g[rows])), 1.0))
        return FixedPointCodec(self.p.frac_bits, 2.0 ** math.ceil(math.log2(scale)), max(self.n, 2))

    def add_tree(self, grower: TreeGrower) -> dict[str, Any]:
        tree, leaf_add = grower.tree()
        self.margin += leaf_add
        self.trees.append(tree)
        return tree

    def score_eval_set(self, t: int, answers: Answers, record: dict[str, float]) -> bool:
        """Add tree ``t`` to the eval margins and the metric to ``record``; True when early stopping ends training."""
        if self.margin_val is None or self.y_val is None:
            raise RuntimeError("this LabelParty has no eval set")
        self.margin_val += leaf_values(self.trees[t], answers.leaves[t])
        value = metric(self.p.objective, self.margin_val, self.y_val)
        record["valid_metric"] = value
        if value < self.best_metric - 1e-12:
            self.best_metric, self.best_iter = value, t
            return False
        rounds = self.p.early_stopping_rounds
        return rounds is not None and self.best_iter is not None and t - self.best_iter >= rounds

    def end(self) -> TrainEnd:
        """How many trees the parties keep (all, or up to the best one with early stopping), and their shapes."""
        n = len(self.trees)
        if self.p.early_stopping_rounds is not None and self.best_iter is not None:
            n = self.best_iter + 1
        return TrainEnd(n, shape_of(dict(enumerate(self.trees[:n]))))

    def result(self, n_trees: int) -> TrainResult:
        trees = self.trees[:n_trees]
        model = {
            "version": MODEL_VERSION,
            "role": "label_party",
            "party": self.name,
            "objective": self.p.objective,
            "base_margin": self.base,
            "params": dataclasses.asdict(self.p),
            "feature_names": self.names,
            "cuts": [c.tolist() for c in self.binner.cuts],
            "feature_parties": {pi.party: pi.names for pi in self.peers},
            "trees": trees,
            "importance": importance_of(trees),
        }
        return TrainResult(model, self.history, self.best_iter if self.p.early_stopping_rounds is not None else None)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()


# --- drivers ---------------------------------------------------------------------------------------
def train_label_party(
    chan: Channel,
    X: Any,
    y: np.ndarray,
    feature_parties: Sequence[str],
    params: SecureBoostParams,
    *,
    eval_set: tuple[Any, np.ndarray] | None = None,
    keys: tuple[PublicKey, PrivateKey] | None = None,
    step: str = STEP,
    on_tree: Callable[[dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train as the label party; returns this party's model part. ``X`` may have zero columns.

    ``on_tree`` gets each tree's record (tree number, seconds, phase timings, eval metric).
    """
    me = LabelParty(chan.party, X, y, params, eval_set)
    try:
        with recording_failed_checks(chan, step):
            for fp in feature_parties:
                fb = me.add_feature_party(fp, chan.recv(fp, f"{step}/schema", expect=Schema))
                chan.disclose(step, disclosures.SCHEMA, fp, me.name, (len(fb.n_bins),))
            setups = me.setup(keys)
            for fp in feature_parties:
                chan.send(fp, f"{step}/cmd", setups[fp])
                if me.histograms == "he":
                    chan.disclose(step, disclosures.PUBLIC_KEY, me.name, fp, (), scheme=me.public.scheme, bits=me.public.bits)
                else:
                    chan.disclose(step, disclosures.OT_SESSION, me.name, fp, (16,))
            if me.histograms == "ot":
                for fp in feature_parties:
                    _ot_setup(chan, me, fp, step)
            for t in range(params.n_estimators):
                record, stop = _train_tree(chan, me, t, step)
                me.history.append(record)
                if on_tree is not None:  # progress for the caller: tree number, seconds, phase timings
                    on_tree(record)
                if stop:
                    break
            end = me.end()
            for pi in me.peers:
                chan.send(pi.party, f"{step}/cmd", end)
                chan.disclose(step, disclosures.TREE_SHAPES, me.name, pi.party, (len(end.shape),), purpose="model")
            return me.result(end.n_trees)
    finally:
        me.close()


def _ot_setup(chan: Channel, me: LabelParty, peer: str, step: str) -> None:
    """The OT extension with ``peer``: its base-OT message in, the base-OT points out, its columns in."""
    base = chan.recv(peer, f"{step}/ot", expect=OtBase)
    chan.disclose(step, disclosures.OT_BASE, peer, me.name, (POINT_BYTES,))
    chan.send(peer, f"{step}/cmd", me.ot_points(peer, base))
    chan.disclose(step, disclosures.OT_POINTS, me.name, peer, (BASE_OTS,))
    n_ots = me.ot_n(peer)
    for _ in range(me.ot_chunks(peer)):
        me.ot_columns(peer, chan.recv(peer, f"{step}/ot", expect=OtColumns))
    me.ot_done(peer)
    chan.disclose(step, disclosures.OT_COLUMNS, peer, me.name, (n_ots,))


def _train_tree(chan: Channel, me: LabelParty, t: int, step: str) -> tuple[dict[str, float], bool]:
    """One tree: gradients out, levels grown, eval set scored; returns its record and whether to stop."""
    tic = time.perf_counter()
    starts, grower = me.start_tree(t)
    for peer, start in starts.items():
        chan.send(peer, f"{step}/cmd", start)
        if not start.label_only:
            if me.histograms == "he":
                chan.disclose(step, disclosures.GRADIENTS, me.name, peer, (len(start.rows),), tree=t)
            else:
                chan.disclose(step, disclosures.MASKED_GRADIENTS, me.name, peer, start.corrections.shape[:2], tree=t)
            if len(start.rows) < me.n:
                chan.disclose(step, disclosures.SAMPLED_ROWS, me.name, peer, (len(start.rows),), tree=t)
    _grow_tree(chan, grower, t, step)
    tree = me.add_tree(grower)
    record = {"tree": float(t), "seconds": time.perf_counter() - tic, **grower.timing}
    if not me.evaluates:
        return record, False
    peers = [pi.party for pi in me.peers]
    answers = _collect_answers(chan, peers, {t: tree}, me.X_val, "eval", t, me.p.prediction_mode, step)
    return record, me.score_eval_set(t, answers, record)


def _grow_tree(chan: Channel, grower: TreeGrower, t: int, step: str) -> None:
    """Grow one tree level by level: plan out, histograms in, splits chosen, partitions in."""
    me = chan.party
    peers = list(grower.peers)
    while grower.growing:
        depth = grower.depth
        plan = grower.level_plan()
        if plan is not None:
            for peer in peers:
                chan.send(peer, f"{step}/cmd", plan)
                chan.disclose(step, disclosures.NODE_ROWS, me, peer, (len(plan.positions),), tree=t, depth=depth, nodes=len(plan.node_ids))
            grower.own_histograms()
            w0 = time.perf_counter()
            for peer in peers:
                reply = chan.recv(peer, f"{step}/hist", expect=HistogramReply)
                grower.timing["wait_histograms"] += time.perf_counter() - w0
                grower.take_histograms(peer, reply)
                shape = (grower.n_computed, len(grower.peers[peer].n_bins))
                chan.disclose(step, disclosures.HISTOGRAMS, peer, me, shape, tree=t, depth=depth)
                w0 = time.perf_counter()
        grower.find_splits()
        if plan is not None:
            for peer in peers:
                request = grower.split_request(peer)
                chan.send(peer, f"{step}/cmd", request)
                chan.disclose(step, disclosures.SPLIT_CHOICE, me, peer, (len(request.nodes), 3), tree=t, depth=depth)
                told = grower.take_partition(peer, chan.recv(peer, f"{step}/split", expect=SplitReply))
                chan.disclose(step, disclosures.PARTITION, peer, me, (told,), tree=t, depth=depth)
        grower.next_level()


def _collect_answers(
    chan: Channel, peers: Sequence[str], trees: dict[int, dict[str, Any]], X_label: np.ndarray, purpose: str, tree_arg: int,
    mode: PredictionMode, step: str,
) -> Answers:
    """Ask every feature party for its answer on the rows of ``X_label`` (``mode``); each row's leaf per tree."""
    n_rows = X_label.shape[0]
    # an evaluated tree is new to the feature parties: its shape comes with the request
    shape = shape_of(trees) if purpose == "eval" else np.zeros((0, 4), dtype=np.int32)
    replies: list[tuple[str, LeafSets | Decisions]] = []
    for fp in peers:
        chan.send(fp, f"{step}/cmd", DecisionRequest(purpose, tree_arg, n_rows, mode, shape))
        if purpose == "eval":
            chan.disclose(step, disclosures.TREE_SHAPES, chan.party, fp, (len(shape),), purpose="eval", tree=tree_arg)
        reply = chan.recv(fp, f"{step}/decisions", expect=LeafSets if mode == "leaves" else Decisions)
        if isinstance(reply, LeafSets):
            chan.disclose(step, disclosures.LEAF_SETS, fp, chan.party, (n_rows, len(reply.trees)), purpose=purpose)
        else:
            chan.disclose(step, disclosures.DECISIONS, fp, chan.party, (n_rows, len(reply.trees)), purpose=purpose)
        replies.append((fp, reply))
    return answers_of(replies, trees, X_label, chan.party)


def _prediction_answers(chan: Channel, model: dict[str, Any], X: Any, step: str, mode: PredictionMode) -> tuple[np.ndarray, Answers]:
    Xl, _ = as_matrix(X)
    if Xl.shape[1] != len(model["feature_names"]):
        raise DataError(f"prediction needs the label party's {len(model['feature_names'])} features, got {Xl.shape[1]}")
    trees = dict(enumerate(model["trees"]))
    with recording_failed_checks(chan, step):
        return Xl, _collect_answers(chan, list(model["feature_parties"]), trees, Xl, "predict", -1, mode, step)


@contextlib.contextmanager
def recording_failed_checks(chan: Channel, step: str) -> Iterator[None]:
    """Record in the ledger which check a feature party's reply failed, then let the error stop the job."""
    try:
        yield
    except InconsistentPeerError as exc:
        for peer in exc.peer.split(", "):  # the leaf-set check names every feature party it intersected
            chan.disclose(step, disclosures.INCONSISTENT_REPLY, peer, chan.party, (), check=exc.check)
        raise


def predict_label_party(chan: Channel, model: dict[str, Any], X: Any, step: str = STEP, mode: PredictionMode = "leaves") -> np.ndarray:
    """Joint batch prediction, label party side: returns the margin (log-odds for logistic loss).

    ``mode``: ``"leaves"`` asks each feature party for the leaves its splits allow (per row and
    tree), ``"nodes"`` for its decision at every split node (the feature party must allow it).
    """
    Xl, answers = _prediction_answers(chan, model, X, step, mode)
    margin = np.full(Xl.shape[0], float(model["base_margin"]))
    for t, tree in enumerate(model["trees"]):
        margin += leaf_values(tree, answers.leaves[t])
    return margin


def explain_label_party(
    chan: Channel, model: dict[str, Any], X: Any, step: str = STEP, method: ContributionMethod = "treeshap",
    mode: PredictionMode = "leaves",
) -> np.ndarray:
    """Joint prediction with per-row feature contributions (XGBoost's ``pred_contribs``), label party side.

    Returns ``(rows, features + 1)``: the label party's features, then each feature party's (in the
    order of ``model["feature_parties"]``), then the bias; each row sums to its margin. ``"treeshap"``
    (exact, as ``pred_contribs=True``) needs every split decision, so it asks in the per-node mode;
    ``"saabas"`` (as ``approx_contribs=True``) needs only each row's leaf and uses ``mode``.
    """
    Xl, answers = _prediction_answers(chan, model, X, step, "nodes" if method == "treeshap" else mode)
    return contributions(model, Xl, answers, chan.party, method)
