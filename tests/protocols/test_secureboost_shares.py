"""OT histograms: share sums equal the plaintext bin sums; what each side receives hides what it must."""

from __future__ import annotations

import os

import numpy as np
import pytest
from sklearn.datasets import make_classification

from misuan.crypto.ot_extension import ExtensionReceiver, ExtensionSender, chunks_of
from misuan.errors import ConfigError, MalformedMessageError
from misuan.net.local import run_local
from misuan.protocols import secureboost as sb
from misuan.protocols.secureboost.binning import PartyBins
from misuan.protocols.secureboost.shares import (
    FeatureShares,
    LabelShares,
    choice_bits,
    encode_pairs,
    key_bytes,
)

FRAC = 20


def _pair(n: int, n_bins: list[int], seed: int = 0):
    rng = np.random.default_rng(seed)
    bins = np.column_stack([rng.integers(0, nb, n) for nb in n_bins]).astype(np.uint8)
    session = os.urandom(16)
    bits = choice_bits(bins, n_bins)
    r, s = ExtensionReceiver(bits, session), ExtensionSender(bits.size, session)
    r.accept_base_points(s.base_points(r.base_message))
    for a, b in chunks_of(bits.size):
        s.accept_columns(a, r.columns(a, b))
    fb = PartyBins("partner", [f"x{f}" for f in range(len(n_bins))], n_bins, np.ones(len(n_bins), bool))
    return bins, fb, LabelShares(fb, s.keys, n, session, FRAC), FeatureShares(r.keys, bins, n_bins, session)


def test_choice_bits_mark_every_bin_but_the_rows_own() -> None:
    bins = np.array([[0, 2], [1, 0]], np.uint8)
    assert choice_bits(bins, [2, 3]).reshape(2, 5).tolist() == [[0, 1, 1, 1, 0], [1, 0, 0, 1, 1]]
    assert key_bytes(10, [2, 3]) == 10 * 5 * 16


@pytest.mark.parametrize("tree", [0, 3])
def test_share_sums_are_the_plaintext_bin_sums(tree: int) -> None:
    n, n_bins = 3000, [5, 33, 2, 9]
    bins, fb, label, feature = _pair(n, n_bins)
    rng = np.random.default_rng(tree)
    g, h = rng.normal(size=n), rng.random(n) / 4
    fb.mask = np.array([True, True, False, True])  # a feature not sampled for this tree
    rows = np.sort(rng.choice(n, 2500, replace=False))  # subsampled rows
    corrections = label.start_tree(tree, rows, encode_pairs(g, h, FRAC, n))
    feature.start_tree(tree, rows, fb.mask, corrections)
    nodes = [rows, rows[rows % 4 == 1], rows[:0], rows[rows > 2990]]
    label.prepare(nodes)
    decoded = label.decode(feature.node_sums(nodes), len(nodes))
    gq, hq = np.rint(g * 2**FRAC) / 2**FRAC, np.rint(h * 2**FRAC) / 2**FRAC
    for node, (G, H) in zip(nodes, decoded, strict=True):
        for f, nb in enumerate(n_bins):
            o = fb.offsets[f]
            want_g = np.bincount(bins[node, f], weights=gq[node], minlength=nb) if fb.mask[f] else np.zeros(nb)
            want_h = np.bincount(bins[node, f], weights=hq[node], minlength=nb) if fb.mask[f] else np.zeros(nb)
            assert np.array_equal(G[o : o + nb], want_g) and np.array_equal(H[o : o + nb], want_h)


def test_corrections_are_one_time_pads() -> None:
    n, n_bins = 2000, [4, 6]
    _, fb, label, _ = _pair(n, n_bins, seed=3)
    zeros = encode_pairs(np.zeros(n), np.zeros(n), FRAC, n)
    rows = np.arange(n)
    first, again = label.start_tree(0, rows, zeros), label.start_tree(1, rows, zeros)
    bits = np.unpackbits(first.view(np.uint8))
    assert abs(bits.mean() - 0.5) < 0.01  # equal (zero) gradients look uniform, not like small numbers
    assert not np.any(first == again)  # fresh pads every tree: no two trees' corrections can be subtracted


def test_malformed_shares_and_corrections_are_refused() -> None:
    _, fb, label, feature = _pair(100, [3, 3])
    with pytest.raises(MalformedMessageError, match=r"tree corrections must be uint64 \(100, 2, 2\)"):
        feature.start_tree(0, np.arange(100), fb.mask, np.zeros((100, 2, 2), np.int64))
    label.start_tree(0, np.arange(100), encode_pairs(np.zeros(100), np.zeros(100), FRAC, 100))
    label.prepare([np.arange(100)])
    with pytest.raises(MalformedMessageError, match=r"histogram shares must be uint64 \(1, 6, 2\)"):
        label.decode(np.zeros((1, 5, 2), np.uint64), 1)
    with pytest.raises(ConfigError, match="lower frac_bits"):
        encode_pairs(np.full(10, 2.0**40), np.zeros(10), FRAC, 10)


def test_transcripts_with_ot_histograms() -> None:
    """What each party receives: the feature party only padded values and its own splits, the label
    party uniform-looking OT columns (its choice bits are ~97% ones) and share sums."""
    X, y = make_classification(n_samples=800, n_features=10, n_informative=5, random_state=0)
    p = sb.SecureBoostParams(n_estimators=2, max_depth=3, max_bin=16, base_score=0.5, n_jobs=1, histograms="ot")
    ch = run_local({
        "bank": lambda c: sb.train_label_party(c, X[:, :5], y.astype(float), ["partner"], p),
        "partner": lambda c: sb.train_feature_party(c, X[:, 5:], "bank", p),
    }, job_id="sgb-ot", transcripts=True)
    partner_saw = [m for _, _, m in ch["partner"].transcript]
    assert {type(m).__name__ for m in partner_saw} == {"Setup", "OtPoints", "TreeStart", "LevelPlan", "SplitRequest", "TrainEnd"}
    for m in partner_saw:
        for name, v in vars(m).items():
            if isinstance(v, np.ndarray) and v.size:
                assert v.dtype.kind in "iub", (type(m).__name__, name, v.dtype)  # nothing real-valued
        if isinstance(m, sb.Setup):
            assert m.histograms == "ot" and m.public_key == {} and m.session.shape == (16,)
        if isinstance(m, sb.TreeStart):
            assert m.ciphertexts.size == 0 and m.corrections.shape == (800, 5, 2)
            assert abs(np.unpackbits(m.corrections.view(np.uint8)).mean() - 0.5) < 0.01
    bank_saw = [m for _, _, m in ch["bank"].transcript]
    columns = np.concatenate([m.columns.reshape(-1) for m in bank_saw if isinstance(m, sb.OtColumns)])
    (schema,) = [m for m in bank_saw if isinstance(m, sb.Schema)]
    n_ots = 800 * int(schema.n_bins.sum())  # one OT per row, feature and bin: 16 bytes of columns each
    assert columns.size == 16 * (-(-n_ots // 128) * 128)
    assert abs(np.unpackbits(columns).mean() - 0.5) < 0.01
    replies = [m for m in bank_saw if isinstance(m, sb.HistogramReply)]
    assert replies and all(m.ciphertexts.size == 0 and m.shares.dtype == np.uint64 for m in replies)
    assert {type(m).__name__ for m in bank_saw} == {"Schema", "OtBase", "OtColumns", "HistogramReply", "SplitReply"}


def test_malformed_ot_setup_messages_and_a_party_without_features() -> None:
    X, y = make_classification(n_samples=200, n_features=4, random_state=1)
    p = sb.SecureBoostParams(n_estimators=1, max_depth=2, max_bin=8, base_score=0.5, n_jobs=1, histograms="ot")
    label, feature = sb.LabelParty("bank", X[:, :2], y.astype(float), p), sb.FeatureParty(X[:, 2:], p)
    label.add_feature_party("partner", feature.schema())
    base = feature.accept_setup(label.setup()["partner"])
    assert base is not None
    points = label.ot_points("partner", base)
    with pytest.raises(MalformedMessageError, match="base-OT points must be uint8"):
        next(feature.ot_columns(sb.OtPoints(points.points.astype(np.uint16))))
    refusing = sb.FeatureParty(X[:, 2:], sb.BoostingParams(max_bin=8, n_jobs=1, histograms="he"))
    with pytest.raises(MalformedMessageError, match="histograms = 'he' allows only HE"):
        refusing.accept_setup(label.setup()["partner"])
    # a feature party with no features: no OT to extend, and the tree still grows on the bank's features
    out = run_local({
        "bank": lambda c: sb.train_label_party(c, X[:, :2], y.astype(float), ["partner"], p),
        "partner": lambda c: sb.train_feature_party(c, X[:, :0], "bank", p),
    })
    assert out["bank"].result.model["trees"]
