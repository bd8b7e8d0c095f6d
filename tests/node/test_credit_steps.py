"""The credit pipeline's step adapters (psi -> woe -> secureboost -> evaluate) through the job runner.

All parties run in one process over in-memory channels (``misuan.api.simulate``), the same adapters
that ``misuan run`` uses over gRPC; results are checked against their plaintext twins.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from misuan.api import JobResult, simulate
from misuan.datasets import taiwan
from misuan.errors import JobSpecError, NoOverlapError
from misuan.ml.metrics import roc_auc
from misuan.ml.woe import woe_iv_plaintext
from misuan.node.steps.alignment import holdout_split
from misuan.protocols.woe import WoeParams


def _spec(tmp: Path, bank: Path, partner: Path, steps: str) -> Path:
    feats = ", ".join(f'"{c}"' for c in taiwan.PARTNER_FEATURES[:6])
    path = tmp / "job.toml"
    path.write_text(textwrap.dedent(f"""\
        version = 1
        [job]
        id = "credit-test"
        [[party]]
        name = "bank"
        role = "label_party"
        address = "127.0.0.1:1"
        dataset = {{ path = "{bank}", id_column = "customer_id", label_column = "default", features = ["LIMIT_BAL", "PAY_0", "PAY_2"] }}
        [[party]]
        name = "partner"
        role = "feature_party"
        address = "127.0.0.1:2"
        dataset = {{ path = "{partner}", id_column = "customer_id", features = [{feats}] }}
        """) + textwrap.dedent(steps), encoding="utf-8")
    return path


PIPELINE = """\
    [[step]]
    kind = "psi"
    params = { reveal = "both", normalize = { case = "casefold" } }
    [[step]]
    kind = "woe"
    params = { n_bins = 5, min_bin_size = 20, include_own = true }
    [[step]]
    kind = "secureboost"
    params = { n_estimators = 2, max_depth = 2, test_fraction = 0.25, split_seed = 3 }
    [[step]]
    kind = "evaluate"
    """


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, pd.DataFrame, pd.DataFrame]:
    d = tmp_path_factory.mktemp("data")
    bank, partner = taiwan.split_for_demo(seed=1)
    bank, partner = bank.iloc[:2500], partner.iloc[:2500]
    bank.to_csv(d / "bank.csv", index=False)
    partner.to_csv(d / "partner.csv", index=False)
    return d / "bank.csv", d / "partner.csv", bank, partner


@pytest.mark.slow
def test_pipeline_matches_plaintext_twins(tmp_path: Path, tables: tuple[Path, Path, pd.DataFrame, pd.DataFrame]) -> None:
    bank_csv, partner_csv, bank, partner = tables
    res = simulate(_spec(tmp_path, bank_csv, partner_csv, PIPELINE), workdir=tmp_path / "w")
    b, p = res.outputs("bank"), res.outputs("partner")

    # PSI: the plaintext intersection under the same normalisation
    norm = partner["customer_id"].map(taiwan.normalize_demo_id)
    shared = set(bank["customer_id"].map(taiwan.normalize_demo_id)) & set(norm)
    assert b["psi"]["size"] == p["psi"]["size"] == len(shared) > 0

    # WOE/IV of the partner's features equals the plaintext computation on the joined rows
    joined = bank.assign(k=bank["customer_id"].map(taiwan.normalize_demo_id)).merge(
        partner.assign(k=norm), on="k", suffixes=("", "_p"))
    cols = list(taiwan.PARTNER_FEATURES[:6])
    twin = woe_iv_plaintext(joined[cols].astype(float), joined["default"], WoeParams(n_bins=5, min_bin_size=20))
    got = {f["feature"]: f["iv"] for f in b["woe"]["features"] if f["party"] == "partner"}
    for f in twin.features:
        assert got[f.feature] == pytest.approx(f.iv, abs=1e-9)
    assert {f["feature"] for f in b["woe"]["features"] if f["party"] == "bank"} == {"LIMIT_BAL", "PAY_0", "PAY_2"}

    # the split is the same on both sides and as documented; evaluation scores only the hold-out
    keys = sorted(k.casefold() for k in shared)  # the PSI normalisation: strip, case-fold
    train, test = holdout_split(keys, 0.25, 3)
    assert b["secureboost"]["n_train"] == p["secureboost"]["n_train"] == len(train)
    gains = [f["gain"] for f in b["secureboost"]["feature_importance"]]
    assert gains and gains == sorted(gains, reverse=True)  # by total gain, largest first
    ev = b["evaluate"]
    assert len(ev["scores"]) == len(ev["y_true"]) == len(test) and "scores" not in p["evaluate"]
    assert ev["auc"] == pytest.approx(roc_auc(np.array(ev["y_true"]), np.array(ev["scores"])))
    assert set(ev["test_ids"]).isdisjoint(ev["train_ids"])
    # the same customers are held out whatever order PSI produced: a function of IDs and seed
    assert {i.casefold() for i in ev["test_ids"]} == {keys[i] for i in test}

    # every step left disclosures in both ledgers, and the partner never learns per-row scores
    for party in ("bank", "partner"):
        entries = res.ledger(party)
        assert {"psi", "woe", "secureboost", "evaluate"} <= {e.step for e in entries}
        # joint prediction: the partner's leaf sets for the hold-out rows go to the bank
        predict = [e for e in entries if e.detail.get("purpose") == "predict"]
        assert {e.step for e in predict} == {"evaluate"}
        assert predict and predict[0].discloser == "partner" and predict[0].recipient == "bank"
        assert predict[0].shape[0] == len(test)
    assert not [e for e in res.ledger("partner") if e.recipient == "partner" and "score" in e.what.lower()]


def _write(tmp: Path, name: str, ids: list[str], **cols: list[float]) -> Path:
    path = tmp / name
    pd.DataFrame({"customer_id": ids, **cols}).to_csv(path, index=False)
    return path


def test_no_overlap_is_a_clear_data_error(tmp_path: Path) -> None:
    bank = _write(tmp_path, "b.csv", ["a1", "a2", "a3"], LIMIT_BAL=[1.0, 2, 3], PAY_0=[0.0, 1, 0], PAY_2=[0.0, 0, 1], default=[0, 1, 0])
    partner = _write(tmp_path, "p.csv", ["z1", "z2"], **{c: [1.0, 2.0] for c in taiwan.PARTNER_FEATURES[:6]})
    with pytest.raises(NoOverlapError, match="no shared customers"):
        simulate(_spec(tmp_path, bank, partner, PIPELINE), workdir=tmp_path / "w")


def test_woe_without_aligned_rows_is_a_clear_spec_error(tmp_path: Path) -> None:
    bank = _write(tmp_path, "b.csv", ["a1", "a2"], LIMIT_BAL=[1.0, 2], PAY_0=[0.0, 1], PAY_2=[0.0, 0], default=[0, 1])
    partner = _write(tmp_path, "p.csv", ["a1", "a2"], **{c: [1.0, 2.0] for c in taiwan.PARTNER_FEATURES[:6]})
    steps = """\
        [[step]]
        kind = "psi"
        params = { reveal = "size" }
        [[step]]
        kind = "woe"
        """
    with pytest.raises(JobSpecError, match='reveal = "both"'):
        simulate(_spec(tmp_path, bank, partner, steps), workdir=tmp_path / "w")


@pytest.mark.parametrize(
    ("steps", "field"),
    [
        ('[[step]]\nkind = "psi"\nparams = { reveal = "everyone" }\n', "reveal"),
        ('[[step]]\nkind = "psi"\nparams = { normalize = { case = "title" } }\n', "normalize"),
        ('[[step]]\nkind = "woe"\nparams = { method = "magic" }\n', "params"),
        ('[[step]]\nkind = "woe"\nparams = { scheme = "rsa" }\n', "scheme"),
        ('[[step]]\nkind = "secureboost"\nparams = { max_depth = 99 }\n', "params"),
        ('[[step]]\nkind = "secureboost"\nparams = { test_fraction = 1.5 }\n', "test_fraction"),
        ('[[step]]\nkind = "secureboost"\nparams = { trees = 5 }\n', "trees"),
    ],
)
def test_bad_step_params_are_refused_before_anything_runs(tmp_path: Path, steps: str, field: str) -> None:
    bank = _write(tmp_path, "b.csv", ["a1"], LIMIT_BAL=[1.0], PAY_0=[0.0], PAY_2=[0.0], default=[0])
    partner = _write(tmp_path, "p.csv", ["a1"], **{c: [1.0] for c in taiwan.PARTNER_FEATURES[:6]})
    with pytest.raises(JobSpecError, match=field):
        simulate(_spec(tmp_path, bank, partner, steps), workdir=tmp_path / "w")


SCORECARD = """\
    [[step]]
    kind = "psi"
    params = { reveal = "both", normalize = { case = "casefold" } }
    [[step]]
    kind = "vertical_lr"
    params = { n_bins = 5, tol = 1e-6, max_iter = 25, test_fraction = 0.25, split_seed = 3, partner_table = "labels" }
    """


def _demo_tables(tmp_path: Path, *, seed: int, rows: int) -> tuple[Path, Path]:
    """The demo's split of the Taiwan data: the bank's first ``rows`` customers, the partner's among them."""
    bank_all, partner_all = taiwan.split_for_demo(seed=seed)
    bank_df = bank_all.iloc[:rows]
    wanted = set(bank_df["customer_id"].map(taiwan.normalize_demo_id).str.casefold())
    partner_df = partner_all[partner_all["customer_id"].map(taiwan.normalize_demo_id).str.casefold().isin(wanted)]
    bank_csv, partner_csv = tmp_path / "bank.csv", tmp_path / "partner.csv"
    bank_df.to_csv(bank_csv, index=False)
    partner_df.to_csv(partner_csv, index=False)
    return bank_csv, partner_csv


def _scorecard_parts(tmp_path: Path, bank_csv: Path, partner_csv: Path, steps: str = SCORECARD, *,
                     spec: Path | None = None, parties: tuple[str, ...] = ("bank", "partner"),
                     ) -> tuple[JobResult, dict[str, dict]]:
    """Run the scorecard job (``spec``, or the two-party one with ``steps``); its result and each
    party's model part (``scorecard.json``) as read back."""
    res = simulate(spec or _spec(tmp_path, bank_csv, partner_csv, steps), workdir=tmp_path / "w")
    parts = {party: json.loads(next((tmp_path / "w" / party).rglob("scorecard.json")).read_text()) for party in parties}
    return res, parts


def _training_rows(bank_df: pd.DataFrame, partner_df: pd.DataFrame) -> pd.DataFrame:
    """The joined rows the SCORECARD step trains on (its hold-out, 0.25 at seed 3, left out), in its order."""
    def key(df: pd.DataFrame) -> pd.Series:
        return df["customer_id"].map(taiwan.normalize_demo_id).str.casefold()

    joined = bank_df.assign(k=key(bank_df)).merge(partner_df.assign(k=key(partner_df)), on="k", suffixes=("", "_p"))
    keys = sorted(joined["k"])
    train, _ = holdout_split(keys, 0.25, 3)
    return joined.set_index("k").loc[[keys[i] for i in train]]


def test_the_scorecard_step_matches_scikit_learn_and_its_parts_add_up(tmp_path: Path) -> None:

    from sklearn.linear_model import LogisticRegression

    bank_csv, partner_csv = _demo_tables(tmp_path, seed=1, rows=2500)
    bank_df, partner_df = pd.read_csv(bank_csv), pd.read_csv(partner_csv)
    res, parts = _scorecard_parts(tmp_path, bank_csv, partner_csv)
    b, p = res.outputs("bank")["vertical_lr"], res.outputs("partner")["vertical_lr"]
    assert b["n_train"] == p["n_train"] and b["n_test"] == p["n_test"] > 0 and b["iterations"] == p["iterations"]
    assert 0.6 < b["auc"] <= 1 and 0 < b["ks"] <= 1 and "auc" not in p
    assert all(len(e["reasons"]) <= 4 for e in b["examples"])
    # the partner's table at the bank as far as partner_table = "labels" shares it: names and bins, no points
    shared = b["partner_table"]
    assert {r["feature"] for r in shared} == set(taiwan.PARTNER_FEATURES[:6]) and all("points" not in r for r in shared)
    assert parts["bank"]["version"] == 1 and parts["partner"]["intercept"] is None  # the intercept is the bank's
    assert parts["bank"]["n_features_all_parties"] == parts["partner"]["n_features_all_parties"] == 3 + 6
    # the same model as scikit-learn's on the pooled bins of the training rows: rebuild those bins
    # from each part's cut points and compare the coefficients
    rows = _training_rows(bank_df, partner_df)

    def one_hot(part: dict, cols: list[str]) -> np.ndarray:
        blocks = []
        for cuts, col, lab in zip(part["cuts"], cols, part["labels"], strict=True):
            codes = np.searchsorted(np.array(cuts), rows[col].to_numpy(float), side="right")
            blocks.append(np.eye(len([x for x in lab if x != "(empty)"]))[codes])
        return np.hstack(blocks)

    x = np.hstack([one_hot(parts["bank"], ["LIMIT_BAL", "PAY_0", "PAY_2"]),
                   one_hot(parts["partner"], list(taiwan.PARTNER_FEATURES[:6]))])
    ref = LogisticRegression(C=1.0, tol=1e-10, max_iter=10000).fit(x, rows["default"])
    coef = np.concatenate([np.concatenate(parts[q]["coef"]) for q in ("bank", "partner")])
    big = np.abs(ref.coef_[0]) > 0.05
    assert np.median(np.abs(coef - ref.coef_[0])[big] / np.abs(ref.coef_[0][big])) < 0.01
    assert [r["bin"] for r in shared] == [x for lab in parts["partner"]["labels"] for x in lab if x != "(empty)"]
    # each party's points table of its own features: rows per bin; default rates at the bank only (dummy encoding)
    tables = {q: pd.read_csv(next((tmp_path / "w" / q).rglob("scorecard_table.csv"))) for q in ("bank", "partner")}
    assert list(tables["bank"].columns) == ["feature", "bin", "count", "event_rate", "points"]
    assert list(tables["partner"].columns) == ["feature", "bin", "count", "points"]
    for q in ("bank", "partner"):
        assert (tables[q].groupby("feature")["count"].sum() == b["n_train"]).all()
    pay0 = tables["bank"][tables["bank"]["feature"] == "PAY_0"]
    in_bins = np.searchsorted(np.array(parts["bank"]["cuts"][1]), rows["PAY_0"].to_numpy(float), side="right")
    n = len(parts["bank"]["cuts"][1]) + 1  # the value bins; then the missing-value bin, empty here
    assert pay0["count"].tolist() == [*np.bincount(in_bins, minlength=n).tolist(), 0]
    rates = np.bincount(in_bins, weights=rows["default"], minlength=n) / np.bincount(in_bins, minlength=n)
    assert np.allclose(pay0["event_rate"][:n], rates, atol=1e-4) and np.isnan(pay0["event_rate"].iloc[n])
    assert [r["count"] for r in b["scorecard"]] == tables["bank"]["count"].tolist()


def test_the_scorecard_step_with_woe_encoding_fits_scikit_learn_on_the_pooled_woe_values(tmp_path: Path) -> None:

    from sklearn.linear_model import LogisticRegression

    from misuan.protocols.vertical_lr.encoding import woe_values

    bank_csv, partner_csv = _demo_tables(tmp_path, seed=1, rows=2500)
    steps = SCORECARD.replace("split_seed = 3", 'split_seed = 3, encoding = "woe"')
    res, parts = _scorecard_parts(tmp_path, bank_csv, partner_csv, steps)
    assert res.outputs("bank")["vertical_lr"]["auc"] > 0.6
    assert parts["bank"]["encoding"] == parts["partner"]["encoding"] == "woe"
    rows = _training_rows(pd.read_csv(bank_csv), pd.read_csv(partner_csv))
    y = rows["default"].to_numpy()
    columns, weights = [], []
    logit = np.full(len(y), parts["bank"]["intercept"])  # the joint model on the training rows
    for party, cols in (("bank", ["LIMIT_BAL", "PAY_0", "PAY_2"]), ("partner", list(taiwan.PARTNER_FEATURES[:6]))):
        part = parts[party]
        for cuts, col, woe, coef in zip(part["cuts"], cols, part["woe"], part["coef"], strict=True):
            codes = np.searchsorted(np.array(cuts), rows[col].to_numpy(float), side="right")
            logit += np.asarray(coef)[codes]
            n = len(woe)
            # each party's WOE are those of the pooled training rows in its bins (the partner's from the bank's labels)
            want = woe_values(np.bincount(codes, minlength=n), np.bincount(codes, weights=y, minlength=n), [n])[0]
            assert np.allclose(woe, want, rtol=0, atol=1e-9), (party, col)
            columns.append(np.asarray(woe)[codes])
            weights.append(float(np.dot(coef, woe) / np.dot(woe, woe)))  # coef = woe * w: per bin, one w per feature
            assert np.allclose(coef, np.asarray(woe) * weights[-1], atol=1e-9)
    ref = LogisticRegression(C=1.0, tol=1e-10, max_iter=10000).fit(np.stack(columns, axis=1), y)
    big = np.abs(ref.coef_[0]) > 0.05
    rel = np.abs(np.array(weights) - ref.coef_[0])[big] / np.abs(ref.coef_[0][big])
    assert rel.max() < 0.01, rel
    from sklearn.metrics import roc_auc_score

    assert abs(roc_auc_score(y, logit) - roc_auc_score(y, ref.decision_function(np.stack(columns, axis=1)))) < 0.002
    # with WOE encoding the partner knows its bins' events, so its own table has their default rates
    partner_table = pd.read_csv(next((tmp_path / "w" / "partner").rglob("scorecard_table.csv")))
    assert "event_rate" in partner_table.columns and partner_table["event_rate"].dropna().between(0, 1).all()
    shown = [w for ws, labs in zip(parts["partner"]["woe"], parts["partner"]["labels"], strict=True)
             for w, lab in zip(ws, labs, strict=False) if lab != "(empty)"]  # the table's rows: its bins with a label
    assert np.allclose(partner_table["woe"], shown, atol=1e-4)


def test_monotonic_binning_gives_both_parties_bins_whose_default_rate_only_rises_or_falls(tmp_path: Path) -> None:
    """And with WOE encoding, points that only rise or only fall too (a bin's points are its WOE, monotone
    in its default rate, times one coefficient per feature): the demo's dummy-encoded PAY_0 reverses."""

    bank_csv, partner_csv = _demo_tables(tmp_path, seed=2, rows=3000)
    steps = SCORECARD.replace("split_seed = 3", 'split_seed = 3, binning = "monotonic", encoding = "woe"') \
        .replace("max_iter = 25", "max_iter = 3")
    res, parts = _scorecard_parts(tmp_path, bank_csv, partner_csv, steps)
    assert res.outputs("bank")["vertical_lr"]["auc"] > 0.6
    rows = _training_rows(pd.read_csv(bank_csv), pd.read_csv(partner_csv))
    checked = 0
    for part, cols in ((parts["bank"], ["LIMIT_BAL", "PAY_0", "PAY_2"]), (parts["partner"], list(taiwan.PARTNER_FEATURES[:6]))):
        for cuts, col in zip(part["cuts"], cols, strict=True):
            assert len(cuts) + 1 <= 5  # at most n_bins value bins
            codes = np.searchsorted(np.array(cuts), rows[col].to_numpy(float), side="right")
            n = np.bincount(codes, minlength=len(cuts) + 1)
            bad = np.bincount(codes, weights=rows["default"].to_numpy(float), minlength=len(cuts) + 1)
            rate = bad[n > 0] / n[n > 0]
            assert np.all(np.diff(rate) >= -1e-12) or np.all(np.diff(rate) <= 1e-12), (col, rate)
            points = np.asarray(part["points"][cols.index(col)])[: len(cuts) + 1][n > 0]
            assert np.all(np.diff(points) >= -1e-9) or np.all(np.diff(points) <= 1e-9), (col, points)
            checked += len(cuts) > 0
    assert checked >= 6  # most features keep more than one bin
    whats = {e.what for e in res.ledger("bank")}
    assert any("per-pre-bin" in w for w in whats)  # the partner's pre-bin counts, recorded as disclosed


def test_the_scorecard_step_with_l1_drops_features_to_zero_and_records_the_partners_gradient(tmp_path: Path) -> None:
    """``penalty = "l1"`` (WOE encoding): some features get no points at all, every bin of them 0 (each
    bin's coefficient is its WOE times its feature's), and the partner's ledger shows it saw its gradient."""

    bank_csv, partner_csv = _demo_tables(tmp_path, seed=1, rows=2500)
    steps = SCORECARD.replace("split_seed = 3", 'split_seed = 3, encoding = "woe", penalty = "l1", c = 0.3')
    res, parts = _scorecard_parts(tmp_path, bank_csv, partner_csv, steps)
    assert res.outputs("bank")["vertical_lr"]["auc"] > 0.6
    dropped = {q: sum(not np.any(c) for c in parts[q]["coef"]) for q in parts}
    kept = {q: sum(bool(np.any(c)) for c in parts[q]["coef"]) for q in parts}
    # C = 0.3 on the demo's data: 4 of the partner's 6 features dropped, 2 kept, the bank's 3 kept
    assert dropped["partner"] >= 2 and kept["partner"] >= 1 and kept["bank"] >= 1, (dropped, kept)
    for ledger in ("bank", "partner"):
        assert any("learns its own gradient" in e.what for e in res.ledger(ledger)), ledger


def _three_party_spec(tmp_path: Path, steps: str) -> tuple[Path, Path, Path, Path]:
    """The scorecard's job with an insurer besides: three in four of the partner's customers, with
    three payment columns of its own. Returns the spec and the three tables."""
    bank_csv, partner_csv = _demo_tables(tmp_path, seed=1, rows=2500)
    partner_df = pd.read_csv(partner_csv)
    insurer_df = partner_df[["customer_id", *INSURER_COLUMNS]].iloc[np.arange(len(partner_df)) % 4 != 0]
    insurer_csv = tmp_path / "insurer.csv"
    insurer_df.to_csv(insurer_csv, index=False)
    spec = _spec(tmp_path, bank_csv, partner_csv, "")
    features = ", ".join(f'"{c}"' for c in INSURER_COLUMNS)
    spec.write_text(spec.read_text() + textwrap.dedent(f"""\
        [[party]]
        name = "insurer"
        role = "feature_party"
        address = "127.0.0.1:3"
        dataset = {{ path = "{insurer_csv}", id_column = "customer_id", features = [{features}] }}
        """) + textwrap.dedent(steps))
    return spec, bank_csv, partner_csv, insurer_csv


INSURER_COLUMNS = ["PAY_AMT1", "PAY_AMT2", "PAY_AMT3"]
THREE_PARTY_SCORECARD = """\
    [[step]]
    kind = "psi"
    parties = ["bank", "partner"]
    params = { reveal = "both", normalize = { case = "casefold" } }
    [[step]]
    kind = "psi"
    name = "psi_insurer"
    parties = ["bank", "insurer"]
    params = { reveal = "both", normalize = { case = "casefold" } }
    [[step]]
    kind = "vertical_lr"
    params = { n_bins = 5, tol = 1e-6, max_iter = 25, test_fraction = 0.25, split_seed = 3, partner_table = "labels" }
    """


def test_the_scorecard_step_with_two_feature_parties_trains_on_the_customers_all_three_share(tmp_path: Path) -> None:
    """A PSI step between the bank and each feature party, then one scorecard over all three: the rows
    are the customers every party holds (each partner told which of its own), the model scikit-learn's
    on their pooled bins, and every part spreads the offset over all twelve features."""
    from sklearn.linear_model import LogisticRegression

    spec, bank_csv, partner_csv, insurer_csv = _three_party_spec(tmp_path, THREE_PARTY_SCORECARD)
    partner_df, insurer_df = pd.read_csv(partner_csv), pd.read_csv(insurer_csv)
    res, parts = _scorecard_parts(tmp_path, bank_csv, partner_csv, spec=spec, parties=("bank", "partner", "insurer"))
    b = res.outputs("bank")["vertical_lr"]
    assert {p["n_features_all_parties"] for p in parts.values()} == {3 + 6 + 3}
    # the rows: the customers all three hold (the insurer three in four of the partner's), less the hold-out
    two_party = _training_rows(pd.read_csv(bank_csv), partner_df)
    key = insurer_df["customer_id"].map(taiwan.normalize_demo_id).str.casefold()
    rows = two_party[two_party.index.isin(set(key))]
    assert 0.6 * len(two_party) < len(rows) < 0.9 * len(two_party)
    insured = insurer_df.assign(k=key).set_index("k")
    assert b["n_train"] == len(rows) and res.outputs("insurer")["vertical_lr"]["n_train"] == len(rows)
    assert 0 < b["n_test"] < b["n_train"] / 2 and 0.6 < b["auc"] <= 1
    columns = {"bank": ["LIMIT_BAL", "PAY_0", "PAY_2"], "partner": list(taiwan.PARTNER_FEATURES[:6]), "insurer": INSURER_COLUMNS}
    blocks = []
    for q, cols in columns.items():
        frame = insured.loc[rows.index] if q == "insurer" else rows
        for cuts, col, lab in zip(parts[q]["cuts"], cols, parts[q]["labels"], strict=True):
            codes = np.searchsorted(np.array(cuts), frame[col].to_numpy(float), side="right")
            blocks.append(np.eye(len([x for x in lab if x != "(empty)"]))[codes])
    ref = LogisticRegression(C=1.0, tol=1e-10, max_iter=10000).fit(np.hstack(blocks), rows["default"])
    coef = np.concatenate([np.concatenate([np.asarray(c)[: len([x for x in lab if x != "(empty)"])]
                                           for c, lab in zip(parts[q]["coef"], parts[q]["labels"], strict=True)])
                           for q in columns])
    big = np.abs(ref.coef_[0]) > 0.05
    assert np.median(np.abs(coef - ref.coef_[0])[big] / np.abs(ref.coef_[0][big])) < 0.01
    assert abs(parts["bank"]["intercept"] - ref.intercept_[0]) < 0.01
    # the bank's table of the feature parties' features: each row names its party
    assert {(r["party"], r["feature"]) for r in b["partner_table"]} == \
        {(q, f) for q in ("partner", "insurer") for f in columns[q]}
    # each feature party was told which of its PSI rows the training takes; the second sent the lead score shares
    for q in ("partner", "insurer"):
        assert any(e.what.startswith("which of the customers it shares") and e.recipient == q for e in res.ledger(q))
    assert any("share of each row's score" in e.what and (e.discloser, e.recipient) == ("insurer", "partner")
               for e in res.ledger("insurer"))


def test_a_scorecard_with_a_feature_party_it_has_no_psi_with_fails_before_anything_runs(tmp_path: Path) -> None:
    steps = THREE_PARTY_SCORECARD.replace('name = "psi_insurer"', 'name = "psi_again"').replace(
        'parties = ["bank", "insurer"]', 'parties = ["bank", "partner"]')
    spec, *_ = _three_party_spec(tmp_path, steps)
    with pytest.raises(JobSpecError, match="needs a PSI step between 'bank' and 'insurer'"):
        simulate(spec, workdir=tmp_path / "w")
    assert not (tmp_path / "w").exists()  # refused by the checks, before any party ran a step


def test_a_scorecard_over_psi_steps_that_normalise_ids_differently_is_refused(tmp_path: Path) -> None:
    """The hold-out is a hash of the normalised IDs: the bank must key it as each partner does."""
    steps = THREE_PARTY_SCORECARD.replace('normalize = { case = "casefold" } }\n    [[step]]\n    kind = "vertical_lr"',
                                          'normalize = { case = "upper" } }\n    [[step]]\n    kind = "vertical_lr"')
    assert steps != THREE_PARTY_SCORECARD
    spec, *_ = _three_party_spec(tmp_path, steps)
    with pytest.raises(JobSpecError, match="different `normalize` params"):
        simulate(spec, workdir=tmp_path / "w")
    assert not (tmp_path / "w").exists()  # refused before the PSIs ran
    with pytest.raises(JobSpecError, match="must run with reveal"):
        simulate(_three_party_spec(tmp_path, THREE_PARTY_SCORECARD.replace(
            'reveal = "both", normalize = { case = "casefold" } }\n    [[step]]\n    kind = "vertical_lr"',
            'reveal = "bank", normalize = { case = "casefold" } }\n    [[step]]\n    kind = "vertical_lr"'))[0],
            workdir=tmp_path / "w")
