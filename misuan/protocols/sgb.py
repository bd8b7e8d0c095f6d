"""SecureBoost (Cheng et al. 2019): vertical gradient boosting between a label party and feature parties.

Parties. The *label party* holds the labels ``y``, possibly some features, and the HE key pair.
Each *feature party* holds features of the same aligned rows (after PSI). Row ``i`` is the same
customer everywhere.

Protocol (per tree; steps ``secureboost/...``):

1. Setup (once): every feature party sends its schema (feature names, bins per feature); the label
   party sends its HE public key (Okamoto-Uchiyama by default, 2048 bits).
2. The label party computes gradients ``g`` and hessians ``h`` (logistic or squared loss), encodes
   each row's pair as one plaintext ``enc(g) * 2**W + enc(h)`` (:class:`FixedPointCodec`), encrypts
   it with fresh randomness and sends the ciphertexts once per tree.
3. Level by level: the label party sends the instance space of every node of the level (a row ->
   node vector) and names the nodes whose histograms a feature party must compute: the root, then
   the smaller child of each split (the larger one is the parent minus it, computed by the label
   party in plaintext after decryption: *histogram subtraction*). The feature party sums the
   ciphertexts into its own quantile bins per node and feature, packs several bins into one
   ciphertext (``c_0^(2^(2W k)) * ...``), re-randomises every ciphertext it sends, and replies.
4. The label party decrypts, finds the best split of every node over all parties' features
   (XGBoost's gain, learned default direction for missing values), and tells each feature party
   only which of *its own* candidates (feature, bin, default direction) won; that party replies
   with the resulting instance partition (rows going left). Leaves get ``-eta * G / (H + lambda)``.

Security model: semi-honest parties, no collusion between the label party and a feature party.
Leakage (what each party learns beyond its output, as in SecureBoost):

- A feature party learns: the instance space (row set) of every node, hence the partition induced by
  every split of the tree, on any party's feature; the number of trees, levels and nodes; which of
  its own features and thresholds were chosen and in which node; the rows sampled for each tree
  (``subsample``); the codec's slot width (from which ``max |gradient|`` rounded up to a power of
  two can be read; constant for logistic loss). It never receives a plaintext gradient, hessian,
  label, prediction, leaf value or gain: only ciphertexts under the label party's key.
- The label party learns: per node, the aggregate gradient and hessian sums of every bin of every
  feature of every feature party (*SecureBoost's known leakage*: with the row sets it can infer bin
  membership of small nodes, and bin counts wherever hessians are constant, e.g. squared loss);
  the instance partition of splits on the feature parties' features; feature names and bin counts;
  at prediction time each row's decision at every split node of the feature party.
- Ciphertexts are re-randomised before they leave the feature party, so the label party cannot link
  a bin sum to the randomness it used for each row.

Ledger: every one of these disclosures is recorded on both sides with ``chan.disclose``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from misuan.crypto.encoding import FixedPointCodec
from misuan.crypto.he import PrivateKey, PublicKey, generate_keypair, public_key_from_wire
from misuan.crypto.pool import HEWorker, WorkerPool, decrypt_batch, encrypt_batch
from misuan.errors import ConfigError, DataError, MalformedMessageError, ProtocolError
from misuan.net import wire
from misuan.net.channel import Channel
from misuan.protocols.sgb_histogram import HistogramWorker, packed_count, plan_groups

__all__ = [
    "STEP",
    "QuantileBinner",
    "SgbParams",
    "SgbTrainResult",
    "predict_feature_party",
    "predict_label_party",
    "train_feature_party",
    "train_label_party",
]

STEP = "secureboost"
MODEL_VERSION = 1
MAX_BIN_LIMIT = 254  # bins are uint8 and one more bin holds the missing values


# ================================================================================================
# parameters and binning
# ================================================================================================
@dataclasses.dataclass(frozen=True)
class SgbParams:
    """XGBoost-style hyperparameters (same names and meaning as ``xgboost.XGBClassifier``)."""

    n_estimators: int = 10
    max_depth: int = 5
    learning_rate: float = 0.3
    reg_lambda: float = 1.0
    gamma: float = 0.0
    min_child_weight: float = 1.0
    subsample: float = 1.0
    colsample_bytree: float = 1.0
    max_bin: int = 32
    objective: str = "binary:logistic"  # or "reg:squarederror"
    base_score: float | None = None  # probability (logistic) or value; None: mean of the labels
    first_tree_label_only: bool = False
    early_stopping_rounds: int | None = None
    he_scheme: str = "ou"
    key_bits: int = 2048
    frac_bits: int = 20
    n_jobs: int | None = None  # worker processes per party; None: every core
    random_state: int = 0

    def __post_init__(self) -> None:
        checks = [
            (self.n_estimators >= 1, "n_estimators must be >= 1"),
            (1 <= self.max_depth <= 16, "max_depth must be in [1, 16]"),
            (self.learning_rate > 0, "learning_rate must be > 0"),
            (self.reg_lambda >= 0 and self.gamma >= 0 and self.min_child_weight >= 0, "reg_lambda, gamma, min_child_weight must be >= 0"),
            (0 < self.subsample <= 1 and 0 < self.colsample_bytree <= 1, "subsample and colsample_bytree must be in (0, 1]"),
            (2 <= self.max_bin <= MAX_BIN_LIMIT, f"max_bin must be in [2, {MAX_BIN_LIMIT}]"),
            (self.objective in ("binary:logistic", "reg:squarederror"), "objective must be 'binary:logistic' or 'reg:squarederror'"),
            (self.he_scheme in ("ou", "paillier"), "he_scheme must be 'ou' or 'paillier'"),
            (8 <= self.frac_bits <= 40, "frac_bits must be in [8, 40]"),
            (self.early_stopping_rounds is None or self.early_stopping_rounds >= 1, "early_stopping_rounds must be >= 1"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(f"SecureBoost parameter: {msg}")


@dataclasses.dataclass
class QuantileBinner:
    """Per-feature quantile cuts; bin ``b`` holds ``cuts[b-1] <= x < cuts[b]``; the last bin is missing.

    A split "at bin k" sends ``x < cuts[k]`` left. Features with at most ``max_bin`` distinct values
    get a cut at every distinct value, so no split XGBoost could make is lost.
    """

    max_bin: int
    cuts: list[np.ndarray] = dataclasses.field(default_factory=list)

    def fit(self, X: np.ndarray) -> QuantileBinner:
        self.cuts = []
        for j in range(X.shape[1]):
            col = X[:, j]
            col = col[~np.isnan(col)]
            uniq = np.unique(col)
            if len(uniq) <= 1:
                cuts = np.zeros(0)
            elif len(uniq) <= self.max_bin:
                cuts = uniq[1:]
            else:
                qs = np.quantile(col, np.linspace(0, 1, self.max_bin + 1)[1:-1], method="linear")
                cuts = np.unique(qs)
                cuts = cuts[cuts > uniq[0]]
            self.cuts.append(np.asarray(cuts, dtype=np.float64))
        return self

    @property
    def n_bins(self) -> list[int]:
        """Bins per feature, the missing-value bin included."""
        return [len(c) + 2 for c in self.cuts]

    def transform(self, X: np.ndarray) -> np.ndarray:
        out = np.empty(X.shape, dtype=np.uint8)
        for j, cuts in enumerate(self.cuts):
            col = X[:, j]
            b = np.searchsorted(cuts, col, side="right")
            b[np.isnan(col)] = len(cuts) + 1
            out[:, j] = b
        return out


def _as_matrix(X: Any) -> tuple[np.ndarray, list[str]]:
    names = [str(c) for c in X.columns] if hasattr(X, "columns") else None
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim != 2:
        raise DataError(f"features must be a 2-d table, got shape {arr.shape}")
    if np.isinf(arr).any():
        raise DataError("features contain infinite values: replace them with NaN (missing) or clip them")
    return arr, names or [f"x{j}" for j in range(arr.shape[1])]


# ================================================================================================
# messages
# ================================================================================================
@wire.message("secureboost.SgbSchema")
@dataclasses.dataclass
class SgbSchema:
    n_rows: int
    feature_names: list[str]
    n_bins: np.ndarray  # int32 (F,), missing bin included


@wire.message("secureboost.SgbSetup")
@dataclasses.dataclass
class SgbSetup:
    public_key: dict[str, Any]


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
    ciphertexts: np.ndarray  # S<ciphertext_bytes>


@wire.message("secureboost.SplitRequest")
@dataclasses.dataclass
class SplitRequest:
    nodes: np.ndarray  # int32: indices into the level's node_ids
    features: np.ndarray  # int32: this party's feature
    bins: np.ndarray  # int32: split after this bin
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


@wire.message("secureboost.Decisions")
@dataclasses.dataclass
class Decisions:
    trees: np.ndarray  # int32 (S,)
    nodes: np.ndarray  # int32 (S,)
    left: np.ndarray  # bool (n_rows, S)


@wire.message("secureboost.TrainEnd")
@dataclasses.dataclass
class TrainEnd:
    n_trees: int


def _check_array(arr: Any, what: str, kind: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in kind:
        raise MalformedMessageError(f"{what}: expected an array of kind {kind!r}, got {getattr(arr, 'dtype', type(arr))}")
    if shape is not None and arr.shape != shape:
        raise MalformedMessageError(f"{what}: expected shape {shape}, got {arr.shape}")
    return arr


def _check_range(arr: np.ndarray, lo: int, hi: int, what: str) -> None:
    if arr.size and (int(arr.min()) < lo or int(arr.max()) >= hi):
        raise MalformedMessageError(f"{what}: values must lie in [{lo}, {hi})")


def _groups_by_position(positions: np.ndarray, n_nodes: int) -> list[np.ndarray]:
    """Rows of each node (ascending) from a row -> node-index vector."""
    order = np.argsort(positions, kind="stable")
    counts = np.bincount(positions[positions >= 0], minlength=n_nodes)
    start = int(np.sum(positions < 0))  # rows in no node sort first
    return list(np.split(order[start:], np.cumsum(counts)[:-1]))


# ================================================================================================
# split finding (label party, plaintext)
# ================================================================================================
@dataclasses.dataclass
class _Split:
    gain: float
    party: str
    feature: int
    bin: int
    default_left: bool


def _best_split(
    G: np.ndarray, H: np.ndarray, offsets: np.ndarray, n_bins: Sequence[int], usable: np.ndarray,
    g_tot: float, h_tot: float, p: SgbParams, party: str,
) -> _Split | None:
    """Best split over one party's features from its flat per-bin sums (XGBoost's exact gain)."""
    lam, mcw = p.reg_lambda, p.min_child_weight
    parent = g_tot * g_tot / (h_tot + lam)
    best: _Split | None = None
    for f, nb in enumerate(n_bins):
        if not usable[f] or nb <= 2:
            continue
        o = int(offsets[f])
        g, h = G[o : o + nb], H[o : o + nb]
        gm, hm = g[-1], h[-1]
        cg, ch = np.cumsum(g[:-2]), np.cumsum(h[:-2])  # left = bins <= k, k < nb - 2
        for default_left, gl, hl in ((False, cg, ch), (True, cg + gm, ch + hm)):
            gr, hr = g_tot - gl, h_tot - hl
            ok = (hl >= mcw) & (hr >= mcw)
            if not ok.any():
                continue
            gain = gl * gl / (hl + lam) + gr * gr / (hr + lam) - parent
            gain = np.where(ok, gain, -np.inf)
            k = int(np.argmax(gain))
            if best is None or gain[k] > best.gain:
                best = _Split(float(gain[k]), party, f, k, default_left)
    return best


def _leaf_weight(g: float, h: float, p: SgbParams) -> float:
    return float(-g / (h + p.reg_lambda) * p.learning_rate)


# ================================================================================================
# label party
# ================================================================================================
@dataclasses.dataclass
class SgbTrainResult:
    model: dict[str, Any]  # this party's model part (JSON-able)
    history: list[dict[str, float]]  # per tree: timings and validation metric
    best_iteration: int | None = None


@dataclasses.dataclass
class _PeerInfo:
    name: str
    names: list[str]
    n_bins: list[int]
    offsets: np.ndarray
    width: int
    mask: np.ndarray  # this tree's sampled features


def _offsets(n_bins: Sequence[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(n_bins)]).astype(np.int64)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _grad_hess(objective: str, margin: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if objective == "binary:logistic":
        pr = _sigmoid(margin)
        return pr - y, np.maximum(pr * (1.0 - pr), 1e-16)
    return margin - y, np.ones_like(margin)


def _metric(objective: str, margin: np.ndarray, y: np.ndarray) -> float:
    if objective == "binary:logistic":
        pr = np.clip(_sigmoid(margin), 1e-15, 1 - 1e-15)
        return float(-np.mean(y * np.log(pr) + (1 - y) * np.log(1 - pr)))
    return float(np.sqrt(np.mean((margin - y) ** 2)))


def base_margin(objective: str, base_score: float | None, y: np.ndarray) -> float:
    """Initial margin: ``logit(base_score)`` for logistic loss, ``base_score`` for squared loss."""
    if objective == "binary:logistic":
        b = float(np.mean(y)) if base_score is None else float(base_score)
        if not 0 < b < 1:
            raise ConfigError(f"base_score must be a probability in (0, 1) for logistic loss, got {b}")
        return math.log(b / (1 - b))
    return float(np.mean(y)) if base_score is None else float(base_score)


def train_label_party(
    chan: Channel,
    X: Any,
    y: np.ndarray,
    feature_parties: Sequence[str],
    params: SgbParams,
    *,
    eval_set: tuple[Any, np.ndarray] | None = None,
    keys: tuple[PublicKey, PrivateKey] | None = None,
    step: str = STEP,
    on_tree: Callable[[dict[str, float]], None] | None = None,
) -> SgbTrainResult:
    """Train as the label party; returns this party's model part. ``X`` may have zero columns."""
    p = params
    Xl, names = _as_matrix(X)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    n = len(y)
    if Xl.shape[0] != n:
        raise DataError(f"label party has {Xl.shape[0]} feature rows but {n} labels")
    if p.objective == "binary:logistic" and not np.isin(y, (0.0, 1.0)).all():
        raise DataError("labels must be 0 or 1 for binary:logistic")
    rng = np.random.default_rng(p.random_state)
    binner = QuantileBinner(p.max_bin).fit(Xl)
    lbins = binner.transform(Xl)
    me = chan.party

    # --- setup --------------------------------------------------------------------------------
    peers: list[_PeerInfo] = []
    for fp in feature_parties:
        sch = chan.recv(fp, f"{step}/schema", expect=SgbSchema)
        nbins = _check_array(sch.n_bins, "schema n_bins", "iu")
        if sch.n_rows != n or nbins.shape != (len(sch.feature_names),):
            raise ProtocolError(f"{fp} has {sch.n_rows} rows and {nbins.shape} bin counts; expected {n} aligned rows")
        _check_range(nbins, 1, MAX_BIN_LIMIT + 3, "schema n_bins")
        nbl = [int(v) for v in nbins.tolist()]
        if len(set(sch.feature_names)) != len(sch.feature_names) or any(not 0 < len(nm) <= 256 for nm in sch.feature_names):
            raise MalformedMessageError(f"{fp}'s feature names must be unique, non-empty and at most 256 characters")
        peers.append(_PeerInfo(fp, list(sch.feature_names), nbl, _offsets(nbl), int(sum(nbl)), np.ones(len(nbl), bool)))
        chan.disclose(step, fp, me, "feature names and bin counts", (len(nbl),), form="plaintext")
    pub, priv = keys if keys is not None else generate_keypair("paillier" if p.he_scheme == "paillier" else "ou", p.key_bits)
    for fp in feature_parties:
        chan.send(fp, f"{step}/cmd", SgbSetup(dict(pub.to_wire())))
        chan.disclose(step, me, fp, "HE public key", (), form="plaintext", scheme=pub.scheme, bits=pub.bits)

    codec = FixedPointCodec(frac_bits=p.frac_bits, max_abs=1.0, max_terms=max(n, 2))
    # wider tables (more memory, longer to build) pay off once there are many rows to encrypt per tree
    window = 14 if n >= 50000 else 12 if n >= 5000 else 8
    pool = WorkerPool(HEWorker, (dict(priv.to_wire()), True, window), p.n_jobs if n >= 2000 else 1)
    try:
        y_val, Xv = None, np.zeros((0, Xl.shape[1]))
        if eval_set is not None:
            Xv, _ = _as_matrix(eval_set[0])
            y_val = np.asarray(eval_set[1], dtype=np.float64).reshape(-1)
            if Xv.shape != (len(y_val), Xl.shape[1]):
                raise DataError("eval_set features do not match the training features or labels")
        m0 = base_margin(p.objective, p.base_score, y)
        margin = np.full(n, m0)
        margin_val = None if y_val is None else np.full(len(y_val), m0)
        trees: list[dict[str, Any]] = []
        history: list[dict[str, float]] = []
        importance: dict[str, dict[str, float]] = {}
        best_metric, best_iter = math.inf, None
        for t in range(p.n_estimators):
            tic = time.perf_counter()
            timing: dict[str, float] = {"encrypt": 0.0, "decrypt": 0.0, "wait_histograms": 0.0, "split_finding": 0.0}
            g, h = _grad_hess(p.objective, margin, y)
            rows = np.arange(n) if p.subsample >= 1 else np.flatnonzero(rng.random(n) < p.subsample)
            if len(rows) == 0:
                rows = np.arange(n)
            feat_masks = _sample_features(rng, p.colsample_bytree, [Xl.shape[1]] + [len(pi.n_bins) for pi in peers])
            for k, pi in enumerate(peers):
                pi.mask = feat_masks[k + 1]
            label_only = p.first_tree_label_only and t == 0
            if p.objective != "binary:logistic":
                scale = float(max(np.max(np.abs(g[rows])), 1.0))
                codec = FixedPointCodec(p.frac_bits, 2.0 ** math.ceil(math.log2(scale)), max(n, 2))
            per_ct = max(1, pub.plaintext_bits // (2 * codec.slot_bits))
            codec.check_fits(pub.plaintext_bits, 2)
            cts: np.ndarray = np.zeros(0, dtype=f"S{pub.ciphertext_bytes}")
            if not label_only and peers:
                e0 = time.perf_counter()
                packed = codec.pack([codec.encode(g[rows]), codec.encode(h[rows])])
                cts = np.frombuffer(encrypt_batch(pool, pub, packed), dtype=f"S{pub.ciphertext_bytes}")
                timing["encrypt"] = time.perf_counter() - e0
            for k, pi in enumerate(peers):
                chan.send(pi.name, f"{step}/cmd", TreeStart(t, rows.astype(np.int32), cts, feat_masks[k + 1], codec.slot_bits, per_ct, label_only))
                if not label_only:
                    chan.disclose(step, me, pi.name, "encrypted gradients and hessians (packed)", (len(rows),), form="ciphertext", tree=t)
                    if len(rows) < n:
                        chan.disclose(step, me, pi.name, "rows sampled for the tree", (len(rows),), form="plaintext", tree=t)
            tree, positions_leaf = _grow_tree(
                chan, p, t, g, h, rows, n, lbins, binner.cuts, feat_masks[0], names,
                [] if label_only else peers, pub, pool, codec, per_ct, timing, importance, step,
            )
            margin += positions_leaf
            trees.append(tree)
            rec = {"tree": float(t), "seconds": time.perf_counter() - tic, **timing}
            if margin_val is not None and y_val is not None:
                margin_val += _eval_tree(chan, tree, t, Xv, peers, step)
                metric = _metric(p.objective, margin_val, y_val)
                rec["valid_metric"] = metric
                if metric < best_metric - 1e-12:
                    best_metric, best_iter = metric, t
                elif p.early_stopping_rounds is not None and best_iter is not None and t - best_iter >= p.early_stopping_rounds:
                    history.append(rec)
                    if on_tree is not None:
                        on_tree(rec)
                    break
            history.append(rec)
            if on_tree is not None:  # progress for the caller: tree number, seconds, phase timings
                on_tree(rec)
        n_keep = len(trees) if (p.early_stopping_rounds is None or best_iter is None) else best_iter + 1
        trees = trees[:n_keep]
        for pi in peers:
            chan.send(pi.name, f"{step}/cmd", TrainEnd(n_keep))
        model = {
            "version": MODEL_VERSION,
            "role": "label_party",
            "party": me,
            "objective": p.objective,
            "base_margin": m0,
            "params": dataclasses.asdict(p),
            "feature_names": names,
            "cuts": [c.tolist() for c in binner.cuts],
            "feature_parties": {pi.name: pi.names for pi in peers},
            "trees": trees,
            "importance": _importance_of(trees),
        }
        return SgbTrainResult(model, history, best_iter if p.early_stopping_rounds is not None else None)
    finally:
        pool.close()


def _sample_features(rng: np.random.Generator, rate: float, counts: list[int]) -> list[np.ndarray]:
    total = sum(counts)
    masks = [np.ones(c, dtype=bool) for c in counts]
    if rate >= 1 or total == 0:
        return masks
    keep = np.zeros(total, dtype=bool)
    keep[rng.choice(total, size=max(1, int(round(rate * total))), replace=False)] = True
    return list(np.split(keep, np.cumsum(counts)[:-1]))


@dataclasses.dataclass
class _Node:
    id: int
    depth: int
    rows: np.ndarray
    g: float
    h: float
    hists: dict[str, tuple[np.ndarray, np.ndarray]] = dataclasses.field(default_factory=dict)
    sibling: int = -1  # index (in the level) of the sibling whose histogram is computed
    parent_hists: dict[str, tuple[np.ndarray, np.ndarray]] | None = None


def _plain_hist(bins: np.ndarray, offsets: np.ndarray, width: int, rows: np.ndarray, g: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if bins.shape[1] == 0:
        return np.zeros(0), np.zeros(0)
    flat = (bins[rows].astype(np.int64) + offsets[None, :-1]).ravel()
    F = bins.shape[1]
    G = np.bincount(flat, weights=np.repeat(g[rows], F), minlength=width)
    H = np.bincount(flat, weights=np.repeat(h[rows], F), minlength=width)
    return G, H


def _grow_tree(
    chan: Channel, p: SgbParams, t: int, g: np.ndarray, h: np.ndarray, rows: np.ndarray, n: int,
    lbins: np.ndarray, l_cuts: list[np.ndarray], l_mask: np.ndarray, l_names: list[str],
    peers: list[_PeerInfo], pub: PublicKey, pool: WorkerPool, codec: FixedPointCodec, per_ct: int,
    timing: dict[str, float], importance: dict[str, dict[str, float]], step: str,
) -> tuple[dict[str, Any], np.ndarray]:
    me = chan.party
    l_nb = [len(c) + 2 for c in l_cuts]
    l_off = _offsets(l_nb)
    l_width = int(l_off[-1])
    nodes_out: list[dict[str, Any]] = []
    leaf_add = np.zeros(n)
    next_id = 1
    level = [_Node(0, 0, rows, float(g[rows].sum()), float(h[rows].sum()))]
    while level:
        depth = level[0].depth
        splittable = depth < p.max_depth
        # which nodes need their histograms computed: the root, or the smaller of two siblings
        if depth == 0:
            compute = [0]
        else:  # siblings sit at (2j, 2j+1): compute the smaller, derive the other by subtraction
            compute = [2 * j if len(level[2 * j].rows) <= len(level[2 * j + 1].rows) else 2 * j + 1 for j in range(len(level) // 2)]
        if splittable:
            positions = np.full(n, -1, dtype=np.int32)
            for i, nd in enumerate(level):
                positions[nd.rows] = i
            node_ids = np.array([nd.id for nd in level], dtype=np.int32)
            plan = LevelPlan(depth, node_ids, positions, np.array(compute, dtype=np.int32))
            for pi in peers:
                chan.send(pi.name, f"{step}/cmd", plan)
                chan.disclose(step, me, pi.name, "instance space of every node of the level", (n,), form="plaintext", tree=t, depth=depth, nodes=len(level))
            # own features, in plaintext, for every node (cheap)
            for nd in level:
                nd.hists[me] = _plain_hist(lbins, l_off, l_width, nd.rows, g, h)
            w0 = time.perf_counter()
            for pi in peers:
                reply = chan.recv(pi.name, f"{step}/hist", expect=HistogramReply)
                timing["wait_histograms"] += time.perf_counter() - w0
                d0 = time.perf_counter()
                _absorb_histograms(reply, pi, level, compute, pub, pool, codec, per_ct)
                timing["decrypt"] += time.perf_counter() - d0
                chan.disclose(step, pi.name, me, "per-bin gradient and hessian sums of the feature party's features, per node", (len(compute), len(pi.n_bins)), form="aggregate", tree=t, depth=depth)
                w0 = time.perf_counter()
            for i, nd in enumerate(level):  # histogram subtraction
                if i not in compute and nd.parent_hists is not None:
                    sib = level[nd.sibling]
                    for pi in peers:
                        pg, ph = nd.parent_hists[pi.name]
                        sg, sh = sib.hists[pi.name]
                        nd.hists[pi.name] = (pg - sg, ph - sh)
        s0 = time.perf_counter()
        decisions: list[_Split | None] = []
        for nd in level:
            best: _Split | None = None
            if splittable:
                cands = [_best_split(*nd.hists[me], l_off, l_nb, l_mask, nd.g, nd.h, p, me)]
                for pi in peers:
                    G, H = nd.hists[pi.name]
                    cands.append(_best_split(G, H, pi.offsets, pi.n_bins, pi.mask, nd.g, nd.h, p, pi.name))
                for c in cands:
                    if c is not None and (best is None or c.gain > best.gain):
                        best = c
                if best is not None and not (best.gain > max(p.gamma, 1e-6)):
                    best = None
            decisions.append(best)
        timing["split_finding"] += time.perf_counter() - s0
        # partitions: own splits locally, the feature parties' splits by request
        lefts: dict[int, np.ndarray] = {}
        for i, (nd, sp) in enumerate(zip(level, decisions, strict=True)):
            if sp is not None and sp.party == me:
                b = lbins[nd.rows, sp.feature]
                miss = b == l_nb[sp.feature] - 1
                lefts[i] = np.where(miss, sp.default_left, b <= sp.bin)
        if splittable:
            for pi in peers:
                mine = [(i, sp) for i, sp in enumerate(decisions) if sp is not None and sp.party == pi.name]
                idx = [i for i, _ in mine]
                req = SplitRequest(
                    np.array(idx, dtype=np.int32),
                    np.array([sp.feature for _, sp in mine], dtype=np.int32),
                    np.array([sp.bin for _, sp in mine], dtype=np.int32),
                    np.array([sp.default_left for _, sp in mine], dtype=bool),
                )
                chan.send(pi.name, f"{step}/cmd", req)
                chan.disclose(step, me, pi.name, "chosen split candidates (feature, bin, default direction) of its own features", (len(idx), 3), form="plaintext", tree=t, depth=depth)
                rep = chan.recv(pi.name, f"{step}/split", expect=SplitReply)
                total = sum(len(level[i].rows) for i in idx)
                left = _check_array(rep.left, "split partition", "b", (total,))
                chan.disclose(step, pi.name, me, "instance partition of nodes split on the feature party's features", (total,), form="plaintext", tree=t, depth=depth)
                start = 0
                for i in idx:
                    m = len(level[i].rows)
                    lefts[i] = left[start : start + m]
                    start += m
        nxt: list[_Node] = []
        for i, (nd, sp) in enumerate(zip(level, decisions, strict=True)):
            if sp is None:
                w = _leaf_weight(nd.g, nd.h, p)
                nodes_out.append({"id": nd.id, "leaf": w, "cover": nd.h})
                leaf_add[nd.rows] = w
                continue
            lm = lefts[i]
            lrows, rrows = nd.rows[lm], nd.rows[~lm]
            lid, rid = next_id, next_id + 1
            next_id += 2
            node: dict[str, Any] = {
                "id": nd.id, "party": sp.party, "feature": sp.feature, "default_left": sp.default_left,
                "left": lid, "right": rid, "gain": sp.gain, "cover": nd.h,
            }
            if sp.party == me:
                node["feature_name"] = l_names[sp.feature]
                node["threshold"] = float(l_cuts[sp.feature][sp.bin])
            else:
                node["feature_name"] = next(pi.names[sp.feature] for pi in peers if pi.name == sp.party)
            nodes_out.append(node)
            hists = dict(nd.hists)
            a = _Node(lid, depth + 1, lrows, float(g[lrows].sum()), float(h[lrows].sum()), parent_hists=hists)
            b = _Node(rid, depth + 1, rrows, float(g[rrows].sum()), float(h[rrows].sum()), parent_hists=hists)
            a.sibling, b.sibling = len(nxt) + 1, len(nxt)
            nxt += [a, b]
        for nd in level:  # free the parent's histograms as soon as the children have theirs
            nd.parent_hists = None
        level = nxt
    nodes_out.sort(key=lambda d: d["id"])
    return {"nodes": nodes_out}, leaf_add


def _absorb_histograms(
    reply: HistogramReply, pi: _PeerInfo, level: list[_Node], compute: list[int], pub: PublicKey,
    pool: WorkerPool, codec: FixedPointCodec, per_ct: int,
) -> None:
    feats = [f for f in range(len(pi.n_bins)) if pi.mask[f]]
    per_node = sum(packed_count(pi.n_bins[f], per_ct) for f in feats)
    expected = per_node * len(compute)
    arr = _check_array(reply.ciphertexts, "histogram ciphertexts", "S", (expected,))
    if arr.dtype.itemsize != pub.ciphertext_bytes:
        raise MalformedMessageError(f"histogram ciphertexts must be S{pub.ciphertext_bytes}, got {arr.dtype}")
    pub.from_array(arr)  # range checks
    plain = decrypt_batch(pool, pub, np.ascontiguousarray(arr).view(np.uint8).tobytes())
    w = codec.slot_bits
    pair_mask, slot_mask = (1 << (2 * w)) - 1, (1 << w) - 1
    pos = 0
    for i in compute:
        G = np.zeros(pi.width)
        H = np.zeros(pi.width)
        for f in feats:
            nb = pi.n_bins[f]
            graw: list[int] = []
            hraw: list[int] = []
            for c in range(packed_count(nb, per_ct)):
                v = plain[pos]
                pos += 1
                k = min(per_ct, nb - c * per_ct)
                if v.bit_length() > 2 * w * k:
                    raise MalformedMessageError("a decrypted histogram ciphertext overflows its packing")
                pairs = []
                for _ in range(k):
                    pairs.append(v & pair_mask)
                    v >>= 2 * w
                for pr in reversed(pairs):
                    graw.append(pr >> w)
                    hraw.append(pr & slot_mask)
            o = int(pi.offsets[f])
            G[o : o + nb] = codec.decode_sum(graw)
            H[o : o + nb] = codec.decode_sum(hraw)
        level[i].hists[pi.name] = (G, H)


# ================================================================================================
# routing rows through trees (label party), with the feature parties' decisions
# ================================================================================================
def route(tree: dict[str, Any], X_label: np.ndarray, decisions: dict[tuple[str, int], np.ndarray], me: str) -> np.ndarray:
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


def _collect_decisions(chan: Channel, peers: Sequence[str], trees: dict[int, dict[str, Any]], n_rows: int, purpose: str, tree_arg: int, step: str) -> list[dict[tuple[str, int], np.ndarray]]:
    """Ask every feature party for its split decisions on ``n_rows`` rows; one dict per tree."""
    me = chan.party
    wanted = {t: {(nd["party"], nd["id"]) for nd in tr["nodes"] if "leaf" not in nd and nd["party"] != me} for t, tr in trees.items()}
    per_tree: dict[int, dict[tuple[str, int], np.ndarray]] = {t: {} for t in trees}
    for fp in peers:
        chan.send(fp, f"{step}/cmd", DecisionRequest(purpose, tree_arg, n_rows))
        rep = chan.recv(fp, f"{step}/decisions", expect=Decisions)
        tr = _check_array(rep.trees, "decision trees", "iu")
        nd = _check_array(rep.nodes, "decision nodes", "iu", tr.shape)
        left = _check_array(rep.left, "decisions", "b", (n_rows, len(tr)))
        got = {(int(a), int(b)) for a, b in zip(tr.tolist(), nd.tolist(), strict=True)}
        need = {(t, nid) for t in trees for party, nid in wanted[t] if party == fp}
        if got != need:
            raise ProtocolError(f"{fp} sent decisions for split nodes {sorted(got)[:5]}..., expected {sorted(need)[:5]}...")
        for j, (a, b) in enumerate(zip(tr.tolist(), nd.tolist(), strict=True)):
            per_tree[int(a)][(fp, int(b))] = left[:, j]
        chan.disclose(step, fp, me, "split decisions of the feature party's split nodes for each row", (n_rows, len(tr)), form="plaintext", purpose=purpose)
    return [per_tree[t] for t in sorted(per_tree)]


def _eval_tree(chan: Channel, tree: dict[str, Any], t: int, Xv: np.ndarray, peers: list[_PeerInfo], step: str) -> np.ndarray:
    dec = _collect_decisions(chan, [pi.name for pi in peers], {t: tree}, Xv.shape[0], "eval", t, step)[0]
    return route(tree, Xv, dec, chan.party)


def _importance_of(trees: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
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


def predict_label_party(chan: Channel, model: dict[str, Any], X: Any, step: str = STEP) -> np.ndarray:
    """Joint batch prediction, label party side: returns the margin (log-odds for logistic loss)."""
    Xl, _ = _as_matrix(X)
    if Xl.shape[1] != len(model["feature_names"]):
        raise DataError(f"prediction needs the label party's {len(model['feature_names'])} features, got {Xl.shape[1]}")
    trees = {t: tr for t, tr in enumerate(model["trees"])}
    decs = _collect_decisions(chan, list(model["feature_parties"]), trees, Xl.shape[0], "predict", -1, step)
    margin = np.full(Xl.shape[0], float(model["base_margin"]))
    for t, tr in trees.items():
        margin += route(tr, Xl, decs[t], chan.party)
    return margin


# ================================================================================================
# feature party
# ================================================================================================
def _decisions_for(splits: list[dict[str, Any]], X: np.ndarray, names: list[str]) -> Decisions:
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


def train_feature_party(
    chan: Channel, X: Any, label_party: str, *, max_bin: int = 32, n_jobs: int | None = None, X_eval: Any = None,
    step: str = STEP,
) -> SgbTrainResult:
    """Train as a feature party: serve the label party's commands until it ends training.

    Returns this party's model part: for each split node on its features, the feature name,
    threshold and default direction (the label party never sees them)."""
    Xf, names = _as_matrix(X)
    if not 2 <= max_bin <= MAX_BIN_LIMIT:
        raise ConfigError(f"max_bin must be in [2, {MAX_BIN_LIMIT}]")
    Xe = None if X_eval is None else _as_matrix(X_eval)[0]
    n, F = Xf.shape
    me = chan.party
    binner = QuantileBinner(max_bin).fit(Xf)
    bins = binner.transform(Xf)
    n_bins = binner.n_bins
    chan.send(label_party, f"{step}/schema", SgbSchema(n, names, np.array(n_bins, dtype=np.int32)))
    chan.disclose(step, me, label_party, "feature names and bin counts", (F,), form="plaintext")
    setup = chan.recv(label_party, f"{step}/cmd", expect=SgbSetup)
    pub = public_key_from_wire(setup.public_key)
    chan.disclose(step, label_party, me, "HE public key", (), form="plaintext", scheme=pub.scheme, bits=pub.bits)
    pool = WorkerPool(HistogramWorker, (dict(pub.to_wire()), bins.tobytes(), bins.shape, n_bins), n_jobs if n >= 2000 else 1)
    splits: list[dict[str, Any]] = []
    history: list[dict[str, float]] = []
    try:
        tree = -1
        sampled = np.ones(F, dtype=bool)
        level_rows: list[np.ndarray] = []
        level_ids = np.zeros(0, dtype=np.int32)
        hist_seconds = 0.0
        per_ct = 0  # 0 while no gradient ciphertexts are loaded for the current tree
        while True:
            cmd = chan.recv(label_party, f"{step}/cmd")
            if isinstance(cmd, TrainEnd):
                if not 0 <= cmd.n_trees <= tree + 1:
                    raise MalformedMessageError(f"TrainEnd keeps {cmd.n_trees} trees of {tree + 1}")
                splits = [sp for sp in splits if sp["tree"] < cmd.n_trees]
                break
            if isinstance(cmd, TreeStart):
                if cmd.tree != tree + 1:
                    raise MalformedMessageError(f"tree {cmd.tree} announced after tree {tree}")
                if tree >= 0:
                    history.append({"tree": float(tree), "histogram_seconds": hist_seconds})
                tree, hist_seconds, per_ct = cmd.tree, 0.0, 0
                sampled = _check_array(cmd.features, "sampled features", "b", (F,))
                if not cmd.label_only:
                    rows = _check_array(cmd.rows, "tree rows", "iu")
                    _check_range(rows, 0, n, "tree rows")
                    if len(rows) == 0 or np.any(np.diff(rows) <= 0):
                        raise MalformedMessageError("tree rows must be non-empty, sorted and unique")
                    cts = _check_array(cmd.ciphertexts, "gradient ciphertexts", "S", (len(rows),))
                    if cts.dtype.itemsize != pub.ciphertext_bytes:
                        raise MalformedMessageError(f"gradient ciphertexts must be S{pub.ciphertext_bytes}")
                    if not 1 <= cmd.slot_bits <= pub.plaintext_bits // 2 or not 1 <= cmd.per_ct * 2 * cmd.slot_bits <= pub.plaintext_bits:
                        raise MalformedMessageError("slot_bits / per_ct do not fit the key's plaintext space")
                    chan.disclose(step, label_party, me, "encrypted gradients and hessians (packed)", (len(rows),), form="ciphertext", tree=tree)
                    if len(rows) < n:
                        chan.disclose(step, label_party, me, "rows sampled for the tree", (len(rows),), form="plaintext", tree=tree)
                    raw = np.ascontiguousarray(cts).view(np.uint8).tobytes()
                    pool.broadcast("load", rows.astype(np.int64), raw, int(cmd.slot_bits), int(cmd.per_ct))
                    per_ct = int(cmd.per_ct)
                continue
            if isinstance(cmd, LevelPlan):
                if per_ct == 0:
                    raise MalformedMessageError("level plan for a tree without gradient ciphertexts")
                level_ids = _check_array(cmd.node_ids, "node ids", "iu")
                positions = _check_array(cmd.positions, "node positions", "iu", (n,))
                _check_range(positions, -1, len(level_ids), "node positions")
                compute = _check_array(cmd.compute, "nodes to compute", "iu")
                _check_range(compute, 0, len(level_ids), "nodes to compute")
                chan.disclose(step, label_party, me, "instance space of every node of the level", (n,), form="plaintext", tree=tree, depth=int(cmd.depth), nodes=len(level_ids))
                level_rows = _groups_by_position(positions.astype(np.int64), len(level_ids))
                h0 = time.perf_counter()
                feats = [f for f in range(F) if sampled[f]]
                tasks = []
                for ci in compute.tolist():
                    r = level_rows[ci]
                    for grp in plan_groups(len(r), feats, n_bins):
                        tasks.append((len(r) * len(grp), r, grp))
                order = sorted(range(len(tasks)), key=lambda i: -tasks[i][0])
                results = pool.map("histogram", [(tasks[i][1], tasks[i][2]) for i in order])
                by_task = dict(zip(order, results, strict=True))
                # reply in (node, feature) order, whatever the grouping
                parts: dict[tuple[int, int], bytes] = {}
                nb_ct = pub.ciphertext_bytes
                ti = 0
                for ci in compute.tolist():
                    for grp in plan_groups(len(level_rows[ci]), feats, n_bins):
                        blob, off = by_task[ti], 0
                        for f in grp:
                            size = packed_count(n_bins[f], per_ct) * nb_ct
                            parts[(ci, f)] = blob[off : off + size]
                            off += size
                        ti += 1
                body = b"".join(parts[(ci, f)] for ci in compute.tolist() for f in feats)
                hist_seconds += time.perf_counter() - h0
                chan.send(label_party, f"{step}/hist", HistogramReply(np.frombuffer(body, dtype=f"S{nb_ct}")))
                chan.disclose(step, me, label_party, "per-bin gradient and hessian sums of the feature party's features, per node", (len(compute), F), form="aggregate", tree=tree, depth=int(cmd.depth))
                continue
            if isinstance(cmd, SplitRequest):
                nodes = _check_array(cmd.nodes, "split nodes", "iu")
                k = len(nodes)
                feats_req = _check_array(cmd.features, "split features", "iu", (k,))
                bins_req = _check_array(cmd.bins, "split bins", "iu", (k,))
                dl = _check_array(cmd.default_left, "split default directions", "b", (k,))
                _check_range(nodes, 0, len(level_rows), "split nodes")
                _check_range(feats_req, 0, F, "split features")
                chan.disclose(step, label_party, me, "chosen split candidates (feature, bin, default direction) of its own features", (k, 3), form="plaintext", tree=tree)
                lefts = []
                for i, f, b, d in zip(nodes.tolist(), feats_req.tolist(), bins_req.tolist(), dl.tolist(), strict=True):
                    if not 0 <= b < n_bins[f] - 2:
                        raise MalformedMessageError(f"split bin {b} is not a cut of feature {f}")
                    r = level_rows[i]
                    fb = bins[r, f]
                    lefts.append(np.where(fb == n_bins[f] - 1, d, fb <= b))
                    splits.append({"tree": tree, "node": int(level_ids[i]), "feature": names[f], "threshold": float(binner.cuts[f][b]), "default_left": bool(d)})
                left = np.concatenate(lefts) if lefts else np.zeros(0, dtype=bool)
                chan.send(label_party, f"{step}/split", SplitReply(left.astype(bool)))
                chan.disclose(step, me, label_party, "instance partition of nodes split on the feature party's features", (len(left),), form="plaintext", tree=tree)
                continue
            if isinstance(cmd, DecisionRequest):
                if cmd.purpose != "eval" or Xe is None or cmd.n_rows != Xe.shape[0] or cmd.tree != tree:
                    raise MalformedMessageError("unexpected evaluation request: pass the same eval_set rows to every party")
                dec = _decisions_for([sp for sp in splits if sp["tree"] == tree], Xe, names)
                chan.send(label_party, f"{step}/decisions", dec)
                chan.disclose(step, me, label_party, "split decisions of the feature party's split nodes for each row", dec.left.shape, form="plaintext", purpose="eval")
                continue
            raise MalformedMessageError(f"unexpected SecureBoost command {type(cmd).__name__}")
        if tree >= 0:
            history.append({"tree": float(tree), "histogram_seconds": hist_seconds})
    finally:
        pool.close()
    model = {
        "version": MODEL_VERSION,
        "role": "feature_party",
        "party": me,
        "label_party": label_party,
        "feature_names": names,
        "splits": splits,
        "split_count": {nm: sum(1 for sp in splits if sp["feature"] == nm) for nm in names},
    }
    return SgbTrainResult(model, history)


def predict_feature_party(chan: Channel, model: dict[str, Any], X: Any, step: str = STEP) -> None:
    """Joint batch prediction, feature party side: send this party's split decisions for ``X``."""
    Xf, _ = _as_matrix(X)
    names = list(model["feature_names"])
    if Xf.shape[1] != len(names):
        raise DataError(f"prediction needs this party's {len(names)} features, got {Xf.shape[1]}")
    label_party = model["label_party"]
    req = chan.recv(label_party, f"{step}/cmd", expect=DecisionRequest)
    if req.purpose != "predict" or req.n_rows != Xf.shape[0]:
        raise MalformedMessageError(f"label party asks decisions for {req.n_rows} rows, this party has {Xf.shape[0]}")
    chan.send(label_party, f"{step}/decisions", _decisions_for(model["splits"], Xf, names))
    chan.disclose(step, chan.party, label_party, "split decisions of the feature party's split nodes for each row", (Xf.shape[0], len(model["splits"])), form="plaintext", purpose="predict")
