"""The ``monitor`` step on the demo data: no alert on an unshifted period, the expected ones on a shifted
copy; the feature party shares only indices and levels; sample-size-aware thresholds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import misuan.api as ms
from misuan.datasets import taiwan
from misuan.ml.monitoring import ALERT, STABLE, stability, thresholds

STEP = """
[[step]]
kind = "monitor"
params = { period_column = "month", reference = "2026-06", current = "2026-11", score_column = "score" }
"""


def _spec(tmp: Path, name: str) -> Path:
    text = f"""version = 1
[job]
id = "{name}"
timeout_s = 60
[[party]]
name = "bank"
role = "label_party"
address = "127.0.0.1:1"
dataset = {{ path = "{name}-bank.csv", id_column = "customer_id", label_column = "default" }}
[[party]]
name = "partner"
role = "feature_party"
address = "127.0.0.1:2"
dataset = {{ path = "{name}-partner.csv", id_column = "customer_id" }}
{STEP}"""
    (tmp / f"{name}.toml").write_text(text)
    return tmp / f"{name}.toml"


def _periods(shift: bool, tmp: Path, name: str) -> Path:
    """The demo's two institutions, each row in June or November (fixed seeds); the bank's score is a
    logistic regression fitted on June. ``shift``: in November limits are cut by 40 %, the partner's
    customers are 8 years older and 30 % of outcomes are noise."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(11)
    bank, partner = taiwan.split_for_demo(seed=5)
    bank["month"] = np.where(rng.random(len(bank)) < 0.5, "2026-06", "2026-11")
    partner["month"] = np.where(rng.random(len(partner)) < 0.5, "2026-06", "2026-11")
    cols = ["LIMIT_BAL", "PAY_0", "PAY_2"]
    june = bank["month"] == "2026-06"
    model = LogisticRegression(max_iter=1000).fit(bank.loc[june, cols], bank.loc[june, "default"])
    if shift:
        nov = bank["month"] == "2026-11"
        bank.loc[nov, "LIMIT_BAL"] = bank.loc[nov, "LIMIT_BAL"] * 0.6
        noise = nov & (rng.random(len(bank)) < 0.3)
        bank.loc[noise, "default"] = rng.integers(0, 2, int(noise.sum()))
        partner.loc[partner["month"] == "2026-11", "AGE"] += 8
    bank["score"] = model.predict_proba(bank[cols])[:, 1]
    bank.to_csv(tmp / f"{name}-bank.csv", index=False)
    partner.to_csv(tmp / f"{name}-partner.csv", index=False)
    return _spec(tmp, name)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ms.JobResult]:
    tmp = tmp_path_factory.mktemp("monitor")
    return {name: ms.simulate(_periods(name == "shifted", tmp, name), workdir=tmp / f"w-{name}")
            for name in ("unshifted", "shifted")}


def test_an_unshifted_period_raises_no_alert(runs: dict[str, ms.JobResult]) -> None:
    res = runs["unshifted"]
    bank, partner = res.outputs("bank")["monitor"], res.outputs("partner")["monitor"]
    assert bank["alerts"] == [] == partner["alerts"]
    assert all(f["level"] == STABLE for f in bank["features"] + partner["features"])
    assert bank["score"]["level"] == STABLE and bank["backtest"]["level"] == STABLE
    assert {f["name"] for f in bank["features"]} == {"LIMIT_BAL", "PAY_0", "PAY_2", "PAY_3", "PAY_4", "PAY_5", "PAY_6"}


def test_a_shifted_period_raises_the_expected_alerts_on_both_sides(runs: dict[str, ms.JobResult]) -> None:
    res = runs["shifted"]
    bank, partner = res.outputs("bank")["monitor"], res.outputs("partner")["monitor"]
    flagged = {(f["name"], f["level"]) for f in bank["features"] if f["level"] != STABLE}
    assert flagged == {("LIMIT_BAL", ALERT)}
    assert {(f["name"], f["level"]) for f in bank["peer_features"] if f["level"] != STABLE} == {("AGE", ALERT)}
    assert bank["score"]["level"] != STABLE and bank["backtest"]["level"] == ALERT  # lower limits: a riskier score
    assert bank["backtest"]["auc_current"] < bank["backtest"]["auc_reference"] - 0.03
    assert len(bank["alerts"]) == 4 and partner["alerts"] == bank["alerts"]  # the partner holds the alerts too
    assert any(a.startswith("partner's feature AGE: stability index") for a in partner["alerts"])


def test_the_feature_party_shares_only_an_index_and_a_level_per_feature(runs: dict[str, ms.JobResult]) -> None:
    res = runs["shifted"]
    for party in ("bank", "partner"):
        entries = res.ledger(party)
        assert {(e.what, e.discloser, e.recipient, e.form) for e in entries} == {
            ("stability index and level of each of its features between the two periods", "partner", "bank", "aggregate"),
            ("the period's monitoring alerts", "bank", "partner", "aggregate"),
        }
    bank = res.outputs("bank")["monitor"]
    assert set(bank["peer_features"][0]) == {"party", "name", "index", "level"}  # no bins, no shares, no counts
    partner_file = pd.read_csv(res.workdir.parent / "shifted-partner.csv")
    nov = partner_file["month"] == "2026-11"
    direct = stability("AGE", partner_file.loc[~nov, "AGE"].to_numpy(float), partner_file.loc[nov, "AGE"].to_numpy(float))
    assert next(f["index"] for f in bank["peer_features"] if f["name"] == "AGE") == pytest.approx(direct.index)


def test_thresholds_follow_the_sample_size() -> None:
    assert thresholds(100_000, 100_000, 10) == (0.1, 0.25)  # large samples: the rule of thumb
    warn, alert = thresholds(200, 200, 10)
    assert warn == pytest.approx(0.169, abs=0.002) and alert == 0.25
    rng = np.random.default_rng(3)  # two samples of one population, 150 rows each: the fixed 0.1 often fires
    values = [stability("x", rng.normal(size=150), rng.normal(size=150)) for _ in range(200)]
    assert sum(v.index > 0.1 for v in values) > 20 and sum(v.level != STABLE for v in values) < 20


def test_a_period_without_defaults_yet_is_back_tested_by_band_without_an_auc() -> None:
    from misuan.ml.monitoring import backtest

    rng = np.random.default_rng(5)
    ref_s, cur_s = rng.random(500), rng.random(200)
    bt = backtest(ref_s, (rng.random(500) < ref_s).astype(int), cur_s, np.zeros(200, dtype=int))
    assert bt.auc_current is None and bt.level == STABLE and sum(b["rows"] for b in bt.bands) == 200
