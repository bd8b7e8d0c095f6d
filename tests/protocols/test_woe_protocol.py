from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import reduce
from typing import Any

import numpy as np
import pandas as pd
import pytest

from misuan.crypto.he import PrivateKey, PublicKey, generate_keypair
from misuan.errors import ConfigError, InconsistentPeerError, MalformedMessageError
from misuan.ml.woe import woe_iv_feature, woe_iv_plaintext
from misuan.net.channel import Channel
from misuan.net.local import LocalOutcome, make_test_pki, run_local
from misuan.net.memory import MemoryNetwork
from misuan.protocols.woe import (
    BinSums,
    EncryptedLabels,
    FeaturePartyWoe,
    LabelChunk,
    MergeDecisions,
    WoeFeatureParty,
    WoeLabelParty,
    WoeParams,
    WoeResult,
    ZeroEncryptions,
    he_batch,
    woe_iv,
    woe_iv_feature_party,
    woe_iv_label_party,
)
from misuan.protocols.woe.binning import unsupervised_bins

Keys = tuple[PublicKey, PrivateKey]
# 1024-bit keys keep the suite fast; the library default (2048) runs in the benchmark and one test below
TEST_CFG = WoeParams(min_key_bits=1024, n_bins=5, n_prebins=20)


@pytest.fixture(scope="module")
def keys() -> Keys:
    return generate_keypair("ou", 1024)


def _data(n: int = 600, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(np.int64)
    score = y * 1.2 + rng.normal(0, 1, n)
    with_missing = score.copy()
    with_missing[rng.random(n) < 0.1] = np.nan
    few_missing = rng.normal(0, 1, n)
    few_missing[:3] = np.nan  # too few for a missing bin of their own
    feats = pd.DataFrame(
        {
            "score": score,
            "with_missing": with_missing,
            "skewed": rng.exponential(1.0, n) ** 4,
            "few_missing": few_missing,
            "integer": rng.integers(0, 4, n).astype(float),
            "constant": np.full(n, 3.0),
            "all_missing": np.full(n, np.nan),
        }
    )
    return feats, y


def _run(
    feats: Any, y: Any, cfg: WoeParams, keys: Keys | None, transcripts: bool = False
) -> tuple[WoeResult, FeaturePartyWoe, dict[str, LocalOutcome]]:
    out = run_local(
        {
            "bank": lambda c: woe_iv(c, "label_party", "partner", y, params=cfg, keypair=keys),
            "partner": lambda c: woe_iv(c, "feature_party", "bank", feats, params=cfg),
        },
        job_id="woe-test",
        timeout_s=60,
        transcripts=transcripts,
    )
    bank, partner = out["bank"].result, out["partner"].result
    assert isinstance(bank, WoeResult) and isinstance(partner, FeaturePartyWoe)
    return bank, partner, out


@pytest.mark.parametrize("method", ["quantile", "equal_width", "chimerge", "tree", "monotonic"])
def test_matches_plaintext_twin(method: str, keys: Keys) -> None:
    feats, y = _data()
    cfg = dataclasses.replace(TEST_CFG, method=method)  # type: ignore[arg-type]
    bank, partner, _ = _run(feats, y, cfg, keys)
    twin = woe_iv_plaintext(feats, y, cfg)
    assert bank.to_dict() == twin.to_dict()
    assert (
        bank["score"].iv > 0.2
        and len(bank["constant"].bins) == 1
        and bank["all_missing"].bins[0].label == "missing"
    )
    assert (
        bank["with_missing"].bins[-1].label == "missing" and bank["few_missing"].bins[-1].label != "missing"
    )
    # the feature party ends with the same final bins as the twin
    for name in feats:
        twin_bins, _ = woe_iv_feature(name, feats[name].to_numpy(), y, cfg)
        assert partner.bins[name].cuts.tolist() == twin_bins.cuts.tolist()
        assert partner.bins[name].missing_bin == twin_bins.missing_bin
    if method in ("chimerge", "tree", "monotonic"):
        assert all(len(f.bins) <= cfg.n_bins + 1 for f in bank.features)
    if method == "monotonic":  # the event rate of the value bins only rises or only falls
        for f in bank.features:
            rates = np.array([b.positives / b.count for b in f.bins if b.label != "missing"])
            assert np.all(np.diff(rates) >= -1e-12) or np.all(np.diff(rates) <= 1e-12), f.feature


@pytest.mark.parametrize("seed", range(20))
def test_monotonic_starts_pool_violators_and_keep_at_most_max_bins(seed: int) -> None:
    from misuan.protocols.woe.binning import monotonic_starts

    rng = np.random.default_rng(seed)
    counts = rng.integers(20, 200, size=rng.integers(2, 40))
    positives = rng.binomial(counts, np.clip(np.linspace(0.1, 0.4, counts.size) * rng.choice([1, -1]) % 1, 0.01, 0.99))
    starts = monotonic_starts(counts, positives, max_bins=6)
    assert starts[0] == 0 and np.all(np.diff(starts) > 0) and starts.size <= 6
    n, p = np.add.reduceat(counts, starts), np.add.reduceat(positives, starts)
    d = np.diff(p / n)
    assert np.all(d >= -1e-12) or np.all(d <= 1e-12)


def test_monotonic_starts_on_a_hand_checked_example() -> None:
    from misuan.protocols.woe.binning import monotonic_starts

    # rates 0.1, 0.3, 0.2, 0.5: rising, with one violation (0.3 > 0.2) pooled into 0.25
    assert monotonic_starts(np.array([100, 100, 100, 100]), np.array([10, 30, 20, 50]), 10).tolist() == [0, 1, 3]
    # falling: 0.5, 0.2, 0.3, 0.1 pools the middle pair
    assert monotonic_starts(np.array([100, 100, 100, 100]), np.array([50, 20, 30, 10]), 10).tolist() == [0, 1, 3]


def test_hand_checked_iv_ks_through_protocol(keys: Keys) -> None:
    x = np.array([0.0] * 10 + [1.0] * 10)
    y = np.array([1, 1] + [0] * 8 + [1] * 6 + [0] * 4)
    bank, _, _ = _run({"x": x}, y, dataclasses.replace(TEST_CFG, n_bins=2), keys)
    f = bank["x"]
    assert [(b.count, b.positives) for b in f.bins] == [(10, 2), (10, 6)]
    assert f.iv == pytest.approx(0.746567, abs=1e-6) and f.ks == pytest.approx(5 / 12)
    assert f.monotonic and bank.table()[0]["monotonic"] == "yes"


def test_small_cells_and_ledger_show_only_bin_aggregates(keys: Keys) -> None:
    feats, y = _data(seed=3)
    cfg = dataclasses.replace(TEST_CFG, method="chimerge", min_bin_size=25)
    _, _, ch = _run(feats, y, cfg, keys, transcripts=True)
    ((sender, step, sums),) = ch["bank"].transcript  # type: ignore[misc]
    assert (sender, step) == ("partner", "woe/bin_sums") and isinstance(sums, BinSums)
    for counts in sums.counts:
        assert len(counts) == 1 or counts.min() >= 25
    for party in ("bank", "partner"):
        entries = ch[party].disclosures
        to_bank = [d for d in entries if d.recipient == "bank"]
        assert {d.form for d in to_bank} == {"aggregate", "plaintext"}
        aggregates = [d for d in to_bank if d.form == "aggregate"]
        assert len(aggregates) == len(feats.columns)
        assert all(d.what.startswith("per-pre-bin row count and positive count of ") for d in aggregates)
        assert all(d.shape[1] == 2 and d.detail["min_bin_size"] == 25 for d in aggregates)
        assert all(d.what.startswith("bin edges of ") for d in to_bank if d.form == "plaintext")
        to_partner = [d for d in entries if d.recipient == "partner"]
        assert sorted({d.what.split(" of ")[0] for d in to_partner}) == [
            "encrypted labels",
            "merge boundaries",
        ]
        assert [d.form for d in to_partner if d.what == "encrypted labels"] == ["ciphertext"]


def test_transcript_feature_party_sees_only_ciphertexts_and_merge_decisions(keys: Keys) -> None:
    feats, y = _data(n=300, seed=5)
    cfg = dataclasses.replace(TEST_CFG, method="tree")
    _, partner, ch = _run(feats, y, cfg, keys, transcripts=True)
    got = ch["partner"].transcript
    kinds = [(s, st, type(m)) for s, st, m in got]
    n_chunks = got[0][2].n_chunks
    assert kinds == [
        ("bank", "woe/labels", EncryptedLabels),
        *[("bank", "woe/label_chunk", LabelChunk)] * n_chunks,
        ("bank", "woe/merges", MergeDecisions),
    ]
    labels_msg, chunks, merges = got[0][2], [m for _, _, m in got[1:-1]], got[-1][2]
    pk = keys[0]
    assert labels_msg.n_rows == 300 and [c.index for c in chunks] == list(range(n_chunks))
    assert all(c.ciphertexts.dtype == np.dtype(f"S{pk.ciphertext_bytes}") for c in chunks)
    cts = np.concatenate([c.ciphertexts for c in chunks])
    assert cts.shape == (300,)
    values = pk.from_array(cts)
    assert all(0 < c < pk.modulus for c in values)
    assert len(set(values)) == 300  # fresh randomness: equal labels give unrelated ciphertexts
    # nothing in the view separates the classes: ciphertexts of 0s and 1s have the same byte statistics
    raw = np.frombuffer(cts.tobytes(), np.uint8).reshape(300, -1)[:, 1:-1].mean(axis=1)
    assert abs(raw[y == 1].mean() - raw[y == 0].mean()) < 10
    assert labels_msg.public_key == pk.to_wire()
    assert merges.features == list(feats.columns)
    # merge decisions: at most n_bins small integers per feature, too few to carry 300 labels
    assert all(s.dtype == np.int64 and len(s) <= cfg.n_bins for s in merges.starts)
    assert all(s[0] == 0 for s in merges.starts if len(s))
    assert partner.iv is None


def test_bin_sums_are_rerandomised(keys: Keys) -> None:
    feats, y = _data(n=200, seed=7)
    _, _, ch = _run(feats[["score"]], y, TEST_CFG, keys, transcripts=True)
    pk, sk = keys
    sent = [
        c
        for _, st, m in ch["partner"].transcript
        if st == "woe/label_chunk"
        for c in pk.from_array(m.ciphertexts)
    ]
    sums = ch["bank"].transcript[0][2]
    bins, _ = woe_iv_feature("score", feats["score"].to_numpy(), y, TEST_CFG)
    codes = bins.assign(feats["score"].to_numpy())
    received = pk.from_array(sums.sums[0])
    for b, c in enumerate(received):
        plain_product = reduce(lambda a, v: a * v % pk.modulus, [sent[i] for i in np.flatnonzero(codes == b)])
        assert c != plain_product  # the bank cannot recognise the product of its own ciphertexts
        assert sk.decrypt_ints([c]) == sk.decrypt_ints([plain_product]) == [int(y[codes == b].sum())]


def test_options_share_iv_and_hide_edges(keys: Keys) -> None:
    feats, y = _data(n=300, seed=9)
    cfg = dataclasses.replace(TEST_CFG, share_iv=True, share_edges=False)
    bank, partner, ch = _run(feats[["score", "with_missing"]], y, cfg, keys)
    assert partner.iv == {f.feature: f.iv for f in bank.features}
    assert bank["score"].bins[0].label == "bin 1" and bank["score"].bins[0].lower is None
    assert not bank["score"].edges_shared
    whats = {d.what for d in ch["bank"].disclosures}
    assert "IV per feature" in whats and not any(w.startswith("bin edges") for w in whats)
    assert partner.to_dict()["features"]["score"]["iv"] == bank["score"].iv


def test_precomputed_zero_encryptions_give_the_same_result(keys: Keys) -> None:
    feats, y = _data(n=250, seed=19)
    zeros = ZeroEncryptions.precompute(keys[0], 260)
    out = run_local(
        {
            "bank": lambda c: woe_iv(
                c, "label_party", "partner", y, params=TEST_CFG, keypair=keys, zeros=zeros
            ),
            "partner": lambda c: woe_iv(c, "feature_party", "bank", feats, params=TEST_CFG),
        },
        timeout_s=30,
    )
    assert out["bank"].result.to_dict() == woe_iv_plaintext(feats, y, TEST_CFG).to_dict()
    assert len(zeros) == 10  # each randomiser used once
    bank = MemoryNetwork(["bank", "partner"]).channel("bank")
    with pytest.raises(ConfigError, match="precompute at least 250"):
        woe_iv_label_party(bank, "partner", y, params=TEST_CFG, keypair=keys, zeros=zeros)
    other = ZeroEncryptions.precompute(generate_keypair("ou", 1024)[0], 250)
    with pytest.raises(ConfigError, match="another key"):
        woe_iv_label_party(bank, "partner", y, params=TEST_CFG, keypair=keys, zeros=other)


def test_parallel_workers_give_the_same_result(keys: Keys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(he_batch, "POOL_MIN_MULTIPLICATIONS", 0)
    monkeypatch.setattr(he_batch, "POOL_MIN_ENCRYPTIONS", 0)
    feats, y = _data(n=200, seed=11)
    cfg = dataclasses.replace(TEST_CFG, workers=2)
    bank, _, _ = _run(feats, y, cfg, keys)
    assert bank.to_dict() == woe_iv_plaintext(feats, y, cfg).to_dict()


def test_default_2048_bit_key_small_job() -> None:
    feats, y = _data(n=100, seed=13)
    cfg = WoeParams(n_bins=3)
    bank, _, ch = _run(feats[["score"]], y, cfg, None)
    assert bank.to_dict() == woe_iv_plaintext(feats[["score"]], y, cfg).to_dict()
    (entry,) = [d for d in ch["bank"].disclosures if d.what == "encrypted labels"]
    assert entry.detail["key_bits"] >= 2048


# --- malformed peers -------------------------------------------------------------------------------
def _with_fake(party_fn: Callable[[Channel], Any], fake_fn: Callable[[Channel], Any], party: str) -> None:
    other = "partner" if party == "bank" else "bank"
    run_local({party: party_fn, other: fake_fn}, job_id="woe-bad", timeout_s=20)


def _send_labels(
    keys: Keys, n: int, cfg: WoeParams = TEST_CFG, **change: Any
) -> Callable[[Channel], None]:
    """A label party that sends an honest header and one chunk of encryptions of 0, except for ``change``."""
    pk = keys[0]
    header = EncryptedLabels(cfg.fingerprint(), dict(pk.to_wire()), n, 1)
    chunk = LabelChunk(0, pk.to_array(pk.encrypt_ints([0] * n)))
    header = dataclasses.replace(
        header, **{k: v for k, v in change.items() if k in ("params_fingerprint", "public_key", "n_rows", "n_chunks")}
    )
    chunk = dataclasses.replace(chunk, **{k: v for k, v in change.items() if k in ("index", "ciphertexts")})

    def run(c: Channel) -> None:
        c.send("partner", "woe/labels", header)
        c.send("partner", "woe/label_chunk", chunk)

    return run


def _too_big(keys: Keys, n: int) -> np.ndarray:
    pk = keys[0]
    arr = pk.to_array(pk.encrypt_ints([0] * n))
    arr[3] = (int(pk.modulus) + 1).to_bytes(pk.ciphertext_bytes, "big")
    return arr


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"n_rows": 49}, MalformedMessageError, "align both parties"),
        ({"n_chunks": 0}, MalformedMessageError, "align both parties"),
        ({"n_chunks": 2}, MalformedMessageError, "all rows in 1"),
        ({"index": 1}, MalformedMessageError, "expected 0"),
        ({"ciphertexts": "too_big"}, MalformedMessageError, "outside"),
        ({"ciphertexts": np.zeros(50, np.int64)}, MalformedMessageError, "must be 1-d"),
        ({"ciphertexts": np.zeros((50, 2), "S129")}, MalformedMessageError, "not a 1-d array"),
        ({"params_fingerprint": "{}"}, ConfigError, "same job spec"),
        ({"public_key": {"scheme": "ou", "n": 15}}, MalformedMessageError, "modulus"),
    ],
)
def test_feature_party_refuses_malformed_labels(
    keys: Keys, change: dict[str, Any], error: type, match: str
) -> None:
    feats, _ = _data(n=50)
    if isinstance(change.get("ciphertexts"), str):
        change = {"ciphertexts": _too_big(keys, 50)}
    with pytest.raises(error, match=match):
        _with_fake(
            lambda c: woe_iv_feature_party(c, "bank", feats, params=TEST_CFG),
            _send_labels(keys, 50, **change),
            "partner",
        )


def test_feature_party_refuses_weak_key(keys: Keys) -> None:
    feats, _ = _data(n=20)
    strict = WoeParams(n_bins=5, n_prebins=20)  # min_key_bits 2048; the fake sends a 1024-bit key
    with pytest.raises(MalformedMessageError, match="at least 2048 bits"):
        _with_fake(
            lambda c: woe_iv_feature_party(c, "bank", feats, params=strict),
            _send_labels(keys, 20, strict),
            "partner",
        )


@pytest.mark.parametrize("starts", [[1, 2], [0, 3, 2], [0, 1, 2, 3, 4, 5, 6], [0, 999]])
def test_feature_party_refuses_bad_merge_decisions(keys: Keys, starts: list[int]) -> None:
    feats, _ = _data(n=200)
    cfg = dataclasses.replace(TEST_CFG, method="chimerge")
    one = feats[["score"]]

    def fake_bank(c: Channel) -> None:
        _send_labels(keys, 200, cfg)(c)
        c.recv("partner", "woe/bin_sums", expect=BinSums)
        c.send("partner", "woe/merges", MergeDecisions(["score"], [np.array(starts, np.int64)]))

    with pytest.raises(MalformedMessageError, match="bad merge decisions"):
        _with_fake(lambda c: woe_iv_feature_party(c, "bank", one, params=cfg), fake_bank, "partner")


def _fake_partner(
    mutate: Callable[[BinSums, PublicKey], BinSums], feats: pd.DataFrame
) -> Callable[[Channel], None]:
    """A feature party that computes honest bin sums, then mutates the message before sending."""

    def run(c: Channel) -> None:
        from misuan.crypto.he import public_key_from_wire

        msg = c.recv("bank", "woe/labels", expect=EncryptedLabels)
        pk = public_key_from_wire(msg.public_key)
        cts = [
            ct
            for _ in range(msg.n_chunks)
            for ct in pk.from_array(c.recv("bank", "woe/label_chunk").ciphertexts)
        ]
        names, counts, sums, cuts, nvb, miss = [], [], [], [], [], []
        for name in feats:
            bins = unsupervised_bins(feats[name].to_numpy(), "quantile", TEST_CFG)
            codes = bins.assign(feats[name].to_numpy())
            names.append(name)
            counts.append(np.bincount(codes, minlength=bins.n_bins).astype(np.int64))
            sums.append(pk.to_array(pk.bin_sums(cts, codes, bins.n_bins)))
            cuts.append(bins.cuts)
            nvb.append(bins.n_value_bins)
            miss.append(-1 if bins.missing_bin is None else bins.missing_bin)
        honest = BinSums(names, ["quantile"] * len(names), nvb, miss, counts, sums, cuts)
        c.send("bank", "woe/bin_sums", mutate(honest, pk))

    return run


def _fewer_rows(m: BinSums, pk: PublicKey) -> BinSums:
    return dataclasses.replace(m, counts=[c - 1 for c in m.counts])


def _small_cell(m: BinSums, pk: PublicKey) -> BinSums:
    c = m.counts[0].copy()
    c[0], c[1] = 2, c[1] + c[0] - 2
    return dataclasses.replace(m, counts=[c, *m.counts[1:]])


def _too_many_positives(m: BinSums, pk: PublicKey) -> BinSums:
    big = pk.to_array(pk.encrypt_ints([10**6] * len(m.counts[0])))
    return dataclasses.replace(m, sums=[big, *m.sums[1:]])


def _float_counts(m: BinSums, pk: PublicKey) -> BinSums:
    return dataclasses.replace(m, counts=[c.astype(np.float64) for c in m.counts])


def _unsorted_edges(m: BinSums, pk: PublicKey) -> BinSums:
    return dataclasses.replace(m, cuts=[c[::-1].copy() for c in m.cuts])


def _wrong_method(m: BinSums, pk: PublicKey) -> BinSums:
    return dataclasses.replace(m, methods=["tree"] * len(m.methods))


def _too_many_bins(m: BinSums, pk: PublicKey) -> BinSums:
    return dataclasses.replace(m, n_value_bins=[999] * len(m.n_value_bins))


def _all_positive(m: BinSums, pk: PublicKey) -> BinSums:
    """Every row of the first feature positive: each bin's positives equal its rows."""
    return dataclasses.replace(m, sums=[pk.to_array(pk.encrypt_ints([int(c) for c in m.counts[0]])), *m.sums[1:]])


def _inflated_positives(m: BinSums, pk: PublicKey) -> BinSums:
    """0 <= positives <= count in every bin, but more positives in total than the bank has."""
    fake = [int(c) // 2 + 1 for c in m.counts[0]]
    return dataclasses.replace(m, sums=[pk.to_array(pk.encrypt_ints(fake)), *m.sums[1:]])


@pytest.mark.parametrize(
    ("mutate", "check"),
    [
        (_fewer_rows, "row count"),
        (_too_many_positives, "positives per bin"),
        (_all_positive, "positives total"),
        (_inflated_positives, "positives total"),
    ],
)
def test_label_party_reports_inconsistent_bin_sums_and_records_the_check(
    keys: Keys, mutate: Callable[[BinSums, PublicKey], BinSums], check: str
) -> None:
    """A forgery the bank can see through with its own labels is blamed on the partner, by check,
    and the check's failure is a row of the bank's ledger (not 'labels contain only one class')."""
    feats, y = _data(n=120, seed=17)
    feats = feats[["score", "integer"]]
    out = run_local(
        {
            "bank": lambda c: woe_iv_label_party(c, "partner", y, params=TEST_CFG, keypair=keys),
            "partner": _fake_partner(mutate, feats),
        },
        job_id="woe-forged", timeout_s=20, raise_errors=False,
    )
    err = out["bank"].error
    assert isinstance(err, InconsistentPeerError), err
    assert (err.peer, err.check, err.subject) == ("partner", check, "score")
    assert f"partner's bin sums of 'score' fail the check '{check}'" in str(err)
    failed = [d for d in out["bank"].disclosures if d.what == "bin sums of a feature that failed a consistency check"]
    assert [(d.discloser, d.recipient, d.detail) for d in failed] == [
        ("partner", "bank", {"check": check, "feature": "score"})
    ]


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (_small_cell, "min_bin_size"),
        (_float_counts, "int64"),
        (_unsorted_edges, "strictly increasing"),
        (_wrong_method, "the job says"),
        (_too_many_bins, "value bins"),
    ],
)
def test_label_party_refuses_malformed_bin_sums(
    keys: Keys, mutate: Callable[[BinSums, PublicKey], BinSums], match: str
) -> None:
    feats, y = _data(n=120, seed=17)
    feats = feats[["score", "integer"]]
    with pytest.raises(MalformedMessageError, match=match):
        _with_fake(
            lambda c: woe_iv_label_party(c, "partner", y, params=TEST_CFG, keypair=keys),
            _fake_partner(mutate, feats),
            "bank",
        )


def test_roles_and_inputs_checked(keys: Keys) -> None:
    ch = MemoryNetwork(["bank", "partner"]).channels(timeout_s=5)
    with pytest.raises(ConfigError, match="role"):
        woe_iv(ch["bank"], "bank", "partner", np.zeros(3))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="min_key_bits"):
        woe_iv_label_party(ch["bank"], "partner", np.array([0, 1]), keypair=keys)  # default needs 2048 bits


# --- over the real transport ----------------------------------------------------------------------
def _party_as_dict(
    chan: Channel, role: str, peer: str, data: Any, cfg: WoeParams, keys: Keys | None
) -> Any:
    """A party function for separate processes: results go back wire-encoded, so as plain dicts."""
    return woe_iv(chan, role, peer, data, params=cfg, keypair=keys).to_dict()  # type: ignore[arg-type]


def test_same_result_and_ledger_over_grpc_in_processes(keys: Keys, tmp_path: Any) -> None:
    import functools

    feats, y = _data(n=300, seed=21)
    cfg = dataclasses.replace(TEST_CFG, method="chimerge")
    out = run_local(
        {
            "bank": functools.partial(
                _party_as_dict, role="label_party", peer="partner", data=y, cfg=cfg, keys=keys
            ),
            "partner": functools.partial(
                _party_as_dict, role="feature_party", peer="bank", data=feats, cfg=cfg, keys=None
            ),
        },
        transport="processes",
        tls=make_test_pki(tmp_path, ["bank", "partner"]),
        job_id="woe-grpc",
    )
    bank, _, mem = _run(feats, y, cfg, keys)
    assert out["bank"].result == bank.to_dict() == woe_iv_plaintext(feats, y, cfg).to_dict()
    for party in ("bank", "partner"):
        view = sorted((d.discloser, d.recipient, d.what, d.shape, d.form) for d in out[party].disclosures)
        entries = mem[party].disclosures
        assert view == sorted((d.discloser, d.recipient, d.what, d.shape, d.form) for d in entries)


# --- the roles on their own: fixed messages in, messages out, no channel ---------------------------
def test_roles_exchange_messages_without_a_channel(keys: Keys) -> None:
    feats, y = _data(n=150, seed=23)
    cfg = dataclasses.replace(TEST_CFG, method="chimerge", share_iv=True)
    bank, partner = WoeLabelParty(y, cfg, keys), WoeFeatureParty(feats, cfg)
    partner.accept_labels(bank.encrypted_labels())
    merges = bank.receive_bin_sums(partner.bin_sums(bank.label_chunks()))
    assert merges is not None and merges.features == list(feats.columns)
    partner.apply_merges(merges)
    iv = bank.iv_summary()
    assert iv is not None
    partner.receive_iv(iv)
    assert bank.result().to_dict() == woe_iv_plaintext(feats, y, cfg).to_dict()
    assert partner.result().iv == {f.feature: f.iv for f in bank.result().features}


def test_label_party_role_refuses_forged_bin_sums(keys: Keys) -> None:
    _, y = _data(n=120, seed=17)
    pk = keys[0]
    bank = WoeLabelParty(y, TEST_CFG, keys, peer="partner")
    one_row_bin = BinSums(
        ["x"], ["quantile"], [2], [-1], [np.array([1, 119], np.int64)], [pk.to_array(pk.encrypt_ints([0, 0]))],
        [np.array([0.5])],
    )
    with pytest.raises(MalformedMessageError, match="partner: counts of 'x' break min_bin_size=5"):
        bank.receive_bin_sums(one_row_bin)
    too_many = dataclasses.replace(
        one_row_bin, counts=[np.array([60, 60], np.int64)], sums=[pk.to_array(pk.encrypt_ints([61, 0]))]
    )
    with pytest.raises(InconsistentPeerError, match="decrypts to more positives than it has rows"):
        bank.receive_bin_sums(too_many)
    positives = int(y.sum())
    with pytest.raises(InconsistentPeerError, match="'positives total'"):
        bank.receive_bin_sums(dataclasses.replace(too_many, sums=[pk.to_array(pk.encrypt_ints([60, 60]))]))
    split = [positives // 3, positives - positives // 3]
    plausible = dataclasses.replace(too_many, sums=[pk.to_array(pk.encrypt_ints(split))])
    assert bank.receive_bin_sums(plausible) is None  # quantile bins: no merge decisions
    assert [(b.count, b.positives) for b in bank.result()["x"].bins] == [(60, split[0]), (60, split[1])]
    assert bank.iv_summary() is None


def test_feature_party_role_refuses_another_job_and_missing_chunks(keys: Keys) -> None:
    feats, y = _data(n=60, seed=29)
    bank = WoeLabelParty(y, TEST_CFG, keys)
    header = bank.encrypted_labels()
    partner = WoeFeatureParty(feats, TEST_CFG, peer="bank")
    with pytest.raises(ConfigError, match="same job spec"):
        partner.accept_labels(dataclasses.replace(header, params_fingerprint=WoeParams(n_bins=3).fingerprint()))
    with pytest.raises(RuntimeError, match="accept_labels"):
        partner.bin_sums([])
    partner.accept_labels(header)
    with pytest.raises(MalformedMessageError, match="bank sent 0 encrypted labels for 60 rows"):
        partner.bin_sums([])
