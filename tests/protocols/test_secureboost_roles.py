"""SecureBoost's roles are objects that take and give messages: fed fixed messages, no channel."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_classification

from misuan.crypto.he import generate_keypair
from misuan.errors import ConfigError, InconsistentPeerError, MalformedMessageError, ProtocolError
from misuan.net.local import run_local
from misuan.params import ParamError
from misuan.protocols import secureboost as sb

KEYS = generate_keypair("ou", bits=2048)  # SecureBoost refuses keys below 2048 bits
NONE = np.zeros((0, 0, 2), dtype=np.uint64)  # TreeStart's corrections (OT histograms), empty with HE


def _connect(label: sb.LabelParty, feature: sb.FeatureParty) -> None:
    """The setup handed over by hand: the HE key, or the OT extension's messages."""
    base = feature.accept_setup(label.setup(KEYS)["partner"])
    if base is not None:
        for cols in feature.ot_columns(label.ot_points("partner", base)):
            label.ot_columns("partner", cols)


def _by_hand(Xa: np.ndarray, Xb: np.ndarray, y: np.ndarray, p: sb.SecureBoostParams) -> tuple[dict, dict]:
    """Both roles wired directly: every message handed from one object to the other, no channel."""
    label, feature = sb.LabelParty("bank", Xa, y, p), sb.FeatureParty(Xb, p)
    try:
        label.add_feature_party("partner", feature.schema())
        _connect(label, feature)
        for t in range(p.n_estimators):
            starts, grower = label.start_tree(t)
            feature.start_tree(starts["partner"])
            while grower.growing:
                plan = grower.level_plan()
                if plan is not None:
                    feature.start_level(plan)
                    grower.own_histograms()
                    grower.take_histograms("partner", feature.histograms())
                grower.find_splits()
                if plan is not None:
                    grower.take_partition("partner", feature.split(grower.split_request("partner")))
                grower.next_level()
            label.add_tree(grower)
        end = label.end()
        feature.end(end)
        return label.result(end.n_trees).model, feature.result("partner", "bank").model
    finally:
        label.close()
        feature.close()


@pytest.mark.parametrize("method", ["ot", "he"])
def test_roles_wired_by_hand_train_the_same_model_as_the_drivers(method: str) -> None:
    X, y = make_classification(n_samples=400, n_features=6, n_informative=4, random_state=2)
    X[np.random.default_rng(2).random(X.shape) < 0.05] = np.nan
    p = sb.SecureBoostParams(n_estimators=2, max_depth=3, max_bin=8, base_score=0.5, n_jobs=1, histograms=method)
    bank, partner = _by_hand(X[:, :3], X[:, 3:], y.astype(float), p)
    out = run_local({
        "bank": lambda c: sb.train_label_party(c, X[:, :3], y.astype(float), ["partner"], p, keys=KEYS),
        "partner": lambda c: sb.train_feature_party(c, X[:, 3:], "bank", p),
    })
    assert bank == out["bank"].result.model
    assert partner == out["partner"].result.model
    assert {nd.get("party") for t in bank["trees"] for nd in t["nodes"]} >= {"bank", "partner"}


def test_feature_party_answers_fixed_messages() -> None:
    pub, priv = KEYS
    rng = np.random.default_rng(7)
    X = rng.normal(size=(60, 3))
    X[rng.random(60) < 0.1, 1] = np.nan
    fp = sb.FeatureParty(X, sb.BoostingParams(max_bin=4, n_jobs=1))
    try:
        schema = fp.schema()
        assert (schema.n_rows, schema.feature_names, schema.n_bins.tolist()) == (60, ["x0", "x1", "x2"], [5, 5, 5])
        assert schema.monotone.tolist() == [0, 0, 0]
        fp.accept_key(sb.Setup("he", dict(pub.to_wire()), np.zeros(0, np.uint8)))
        # one value per row in place of a packed (gradient, hessian) pair: the sums per bin come back
        values = rng.integers(0, 1000, 60)
        rows = np.arange(60, dtype=np.int32)
        fp.start_tree(sb.TreeStart(0, rows, pub.to_array(pub.encrypt_ints(values)), np.ones(3, bool), 30, 1, False, NONE))
        fp.start_level(sb.LevelPlan(0, np.array([0], np.int32), np.zeros(60, np.int32), np.array([0], np.int32)))
        sums = priv.decrypt_ints(pub.from_array(fp.histograms().ciphertexts))
        assert sums == [int(values[fp.bins[:, f] == b].sum()) for f in range(3) for b in range(5)]
        reply = fp.split(sb.SplitRequest(np.array([0]), np.array([1]), np.array([0]), np.array([True])))
        cut = fp.binner.cuts[1][0]
        assert reply.left.tolist() == [bool(np.isnan(x) or x < cut) for x in X[:, 1]]
        for bad_bin, missing_left in ((9, True), (3, True), (-1, False), (-2, True)):  # out of range, or all rows one way
            with pytest.raises(MalformedMessageError, match="is not a split of feature 1"):
                fp.split(sb.SplitRequest(np.array([0]), np.array([1]), np.array([bad_bin]), np.array([missing_left])))
        with pytest.raises(MalformedMessageError, match="tree 2 announced after tree 0"):
            fp.start_tree(sb.TreeStart(2, rows, np.zeros(0, "S1"), np.ones(3, bool), 30, 1, True, NONE))
        fp.end(sb.TrainEnd(1, np.array([[0, 0, 1, 2]], np.int32)))
        model = fp.result("partner", "bank").model
        assert model["splits"] == [{"tree": 0, "node": 0, "feature": "x1", "threshold": float(cut), "default_left": True}]
    finally:
        fp.close()


def test_label_party_refuses_a_bad_schema() -> None:
    lp = sb.LabelParty("bank", np.zeros((10, 0)), np.array([0.0, 1.0] * 5), sb.SecureBoostParams())
    dup = sb.Schema(10, ["a", "a"], np.array([3, 3], np.int32), np.zeros(2, np.int8))
    with pytest.raises(MalformedMessageError, match="unique"):
        lp.add_feature_party("partner", dup)
    fb = lp.add_feature_party("partner", sb.Schema(10, ["a", "b"], np.array([3, 4], np.int32), np.array([0, -1], np.int8)))
    assert (fb.names, fb.n_bins, fb.offsets.tolist(), fb.width) == (["a", "b"], [3, 4], [0, 3, 7], 7)
    assert fb.monotone.tolist() == [0, -1]


def _level_zero(method: str, seed: int = 8):
    """A label party and a feature party wired by hand up to the root's histograms."""
    X, y = make_classification(n_samples=300, n_features=4, n_informative=3, n_redundant=0, shuffle=False, random_state=seed)
    p = sb.SecureBoostParams(n_estimators=1, max_depth=2, max_bin=8, base_score=0.5, n_jobs=1, histograms=method)
    label, feature = sb.LabelParty("bank", X[:, 3:], y.astype(float), p), sb.FeatureParty(X[:, :3], p)  # bank: noise
    label.add_feature_party("partner", feature.schema())
    _connect(label, feature)
    starts, grower = label.start_tree(0)
    feature.start_tree(starts["partner"])
    plan = grower.level_plan()
    feature.start_level(plan)
    grower.own_histograms()
    return label, feature, grower


@pytest.mark.parametrize("method", ["ot", "he"])
def test_label_party_refuses_histograms_that_do_not_add_up_to_the_node(method: str) -> None:
    label, feature, grower = _level_zero(method)
    try:
        honest = feature.histograms()
        pub = KEYS[0]
        if method == "he":
            forged = sb.HistogramReply(pub.to_array(pub.encrypt_ints([0] * len(honest.ciphertexts))), NONE)  # every bin Enc(0)
        else:
            forged = sb.HistogramReply(honest.ciphertexts, np.zeros_like(honest.shares))  # every share sum 0
        with pytest.raises(InconsistentPeerError, match="partner failed the histogram totals check: node 0") as err:
            grower.take_histograms("partner", forged)
        assert (err.value.peer, err.value.check) == ("partner", "histogram totals")
        assert isinstance(err.value, ProtocolError)
        grower.own_histograms()  # the pads again: the failed reply used them up
        grower.take_histograms("partner", honest)  # the honest reply passes
    finally:
        label.close()
        feature.close()


def test_label_party_refuses_a_partition_that_contradicts_the_chosen_bins() -> None:
    label, feature, grower = _level_zero("ot")
    try:
        grower.take_histograms("partner", feature.histograms())
        grower.find_splits()
        request = grower.split_request("partner")
        assert len(request.nodes) == 1  # the root is split on a partner feature
        n = len(feature.split(request).left)
        for forged in (np.ones(n, bool), np.zeros(n, bool)):  # every row one way
            grower._requested["partner"] = [0]
            with pytest.raises(InconsistentPeerError, match="partner failed the split partition check: node 0"):
                grower.take_partition("partner", sb.SplitReply(forged))
    finally:
        label.close()
        feature.close()


def test_keys_below_2048_bits_are_refused_on_both_sides() -> None:
    weak = generate_keypair("ou", bits=1024)
    lp = sb.LabelParty("bank", np.zeros((10, 0)), np.array([0.0, 1.0] * 5), sb.SecureBoostParams(histograms="he"))
    with pytest.raises(ConfigError, match="at least 2048 bits, not 10"):
        lp.setup(weak)
    fp = sb.FeatureParty(np.zeros((10, 1)), sb.BoostingParams(n_jobs=1))
    with pytest.raises(MalformedMessageError, match="-bit key; SecureBoost requires at least 2048"):
        fp.accept_setup(sb.Setup("he", dict(weak[0].to_wire()), np.zeros(0, np.uint8)))
    with pytest.raises(ParamError, match="key_bits: must be an integer from 2048"):
        sb.BoostingParams(key_bits=1024)


def test_a_failed_check_is_recorded_in_the_label_partys_ledger_before_the_job_stops() -> None:
    from misuan.net.memory import MemoryNetwork
    from misuan.protocols.secureboost.disclosures import INCONSISTENT_REPLY
    from misuan.protocols.secureboost.label_party import recording_failed_checks

    chan = MemoryNetwork(["bank", "partner"], job_id="j").channel("bank")
    with pytest.raises(InconsistentPeerError, match="histogram totals"):
        with recording_failed_checks(chan, "secureboost"):
            raise InconsistentPeerError("partner failed the histogram totals check: node 0", peer="partner",
                                        check="histogram totals")
    (entry,) = chan.recorder.entries  # type: ignore[attr-defined]
    assert (entry.discloser, entry.recipient, entry.what, entry.form) == (
        "partner", "bank", INCONSISTENT_REPLY.what, INCONSISTENT_REPLY.form)
    assert entry.detail == {"check": "histogram totals"}
