"""Horizontal jobs: data parties and an aggregator in a job spec, the three horizontal step kinds.

Four lenders of the bundled Taiwan data (different customers, the same columns, their own labels)
and an aggregator run pooled WOE, a scorecard and boosting as one job. Every party ends with the
same model files; the scorecard's weights are scikit-learn's on the pooled WOE (its plaintext twin);
what each ledger records is secure aggregation's catalogue, as the consent preview announced; and
specs that mix the two kinds of job, or name columns a lender lacks, fail before anything connects.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from misuan.api import JobResult, load_job, simulate
from misuan.datasets import taiwan
from misuan.errors import DataError, JobSpecError, MissingColumnError
from misuan.ml.horizontal import HorizontalGBDTClassifier, HorizontalWoeBinning
from misuan.node.consent import preview_job
from misuan.node.runner import check_runnable, job_dir
from misuan.node.steps.horizontal import read_boosting, read_scorecard

LENDERS = ("lender-a", "lender-b", "lender-c", "lender-d")
HUB = "hub"
FEATURES = ["LIMIT_BAL", "AGE", "PAY_0", "PAY_2", "BILL_AMT1", "PAY_AMT1"]
FEATURE_LIST = ", ".join(f'"{c}"' for c in FEATURES)

STEPS = f"""
[[step]]
kind = "horizontal_woe"
name = "woe"
params = {{ features = [{FEATURE_LIST}], max_bin = 8 }}

[[step]]
kind = "horizontal_scorecard"
name = "card"
params = {{ woe_step = "woe", min_iv = 0.02, C = 1.0 }}

[[step]]
kind = "horizontal_boosting"
name = "trees"
params = {{ features = [{FEATURE_LIST}], n_estimators = 3, max_depth = 3 }}
"""


def _spec_text(data: dict[str, Path], steps: str = STEPS, job_id: str = "hjob") -> str:
    parties = "".join(
        f'[[party]]\nname = "{n}"\nrole = "data_party"\naddress = "127.0.0.1:{50300 + i}"\n'
        f'dataset = {{ path = "{p}", id_column = "ID", label_column = "default" }}\n\n'
        for i, (n, p) in enumerate(data.items())
    )
    hub = f'[[party]]\nname = "{HUB}"\nrole = "aggregator"\naddress = "127.0.0.1:50399"\n'
    return f'version = 1\n[job]\nid = "{job_id}"\ntimeout_s = 120\n\n{parties}{hub}{steps}'


@pytest.fixture(scope="module")
def lender_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("lenders")
    df = taiwan.load_taiwan().iloc[:4000]
    out = {}
    for k, name in enumerate(LENDERS):  # uneven sizes: 1600, 1200, 800, 400
        rows = df.iloc[[i for i in range(len(df)) if i % 10 < 4 - k or (k == 3 and i % 10 == 9)]]
        out[name] = tmp / f"{name}.csv"
        rows.to_csv(out[name], index=False)
    return out


@pytest.fixture(scope="module")
def job(lender_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, JobResult]:
    tmp = tmp_path_factory.mktemp("hjob")
    spec = tmp / "job.toml"
    spec.write_text(_spec_text(lender_files))
    return spec, simulate(spec, workdir=tmp / "run")


def _artefact(res: JobResult, party: str, step: str, name: str) -> Path:
    return job_dir(res.workdir / party, res.job_id) / "artefacts" / step / name


def test_every_party_ends_with_the_same_models(job: tuple[Path, JobResult]) -> None:
    _, res = job
    for step, name in (("woe", "binning.json"), ("card", "scorecard.json"), ("trees", "model.json")):
        docs = {p: _artefact(res, p, step, name).read_bytes() for p in (*LENDERS, HUB)}
        assert len(set(docs.values())) == 1, f"{step}/{name} differs between parties"
    assert res.outputs(HUB)["trees"]["contributors"] == list(LENDERS)
    for lender in LENDERS:
        out = res.outputs(lender)
        assert 0.6 < out["card"]["auc_own_rows"] < 0.9 and 0.6 < out["trees"]["auc_own_rows"] < 0.95
        assert out["woe"]["iv"][0]["feature"] == "PAY_0"
    assert "auc_own_rows" not in res.outputs(HUB)["card"]  # the aggregator has no rows to score
    table = pd.read_csv(_artefact(res, HUB, "woe", "woe_table.csv"))
    assert set(table["feature"]) == set(FEATURES) and table["bads"].sum() == 6 * sum(
        int(pd.read_csv(f)["default"].sum()) for f in _lender_paths(res))


def _lender_paths(res: JobResult) -> list[Path]:
    spec = load_job(res.workdir.parent / "job.toml")
    return [p.dataset.path for p in spec.parties if p.dataset is not None]


def test_the_scorecard_is_scikit_learns_logistic_regression_on_the_pooled_woe(job: tuple[Path, JobResult]) -> None:
    from sklearn.linear_model import LogisticRegression

    _, res = job
    card = read_scorecard(_artefact(res, "lender-b", "card", "scorecard.json"))
    pooled = pd.concat([pd.read_csv(p) for p in _lender_paths(res)])
    x, y = pooled[FEATURES].to_numpy(dtype=float), pooled["default"].to_numpy()
    ref = LogisticRegression(C=1.0, tol=1e-10, max_iter=1000).fit(card.woe(x), y)
    assert np.allclose(card.lr.coef_, ref.coef_[0], atol=2e-4) and abs(card.lr.intercept_ - ref.intercept_[0]) < 2e-4
    # points per bin add up to the score of the log-odds: offset - factor * logit(PD)
    score = card.card.score(card.bins(x))
    factor = card.scaling["pdo"] / np.log(2)
    offset = card.scaling["base_score"] - factor * np.log(card.scaling["base_odds"])
    p = card.predict_proba(x)
    assert np.allclose(score, offset - factor * np.log(p / (1 - p)), atol=1e-6)


def test_the_model_files_load_and_predict_locally(job: tuple[Path, JobResult]) -> None:
    _, res = job
    features, model = read_boosting(_artefact(res, "lender-a", "trees", "model.json"))
    rows = pd.read_csv(_lender_paths(res)[0])[features].to_numpy(dtype=float)
    p = model.predict_proba(rows)
    assert features == FEATURES and p.shape == (len(rows), 2) and np.allclose(p.sum(axis=1), 1.0)
    doc = json.loads(_artefact(res, "lender-a", "trees", "model.json").read_text())
    doc["model"]["trees"][0][0]["left"] = 0  # a node pointing back at itself would loop
    with pytest.raises(DataError, match="tree 0 node 0 splits outside"):
        HorizontalGBDTClassifier.from_dict(doc)
    woe = json.loads(_artefact(res, HUB, "woe", "binning.json").read_text())
    woe["table"]["edges"][0] = [3.0, 1.0]
    with pytest.raises(DataError):
        HorizontalWoeBinning.from_dict(woe)


def test_ledgers_hold_secure_aggregation_as_the_consent_preview_announced(job: tuple[Path, JobResult]) -> None:
    spec_path, res = job
    spec = load_job(spec_path)
    for party in (*LENDERS, HUB):
        entries = res.ledger(party)
        assert entries and {e.what for e in entries if e.discloser == party and party == HUB} <= {
            "the data parties' public keys and who advertised them", "the shares other data parties encrypted to it",
            "which data parties' masked inputs arrived and which dropped out",
            "the sum of the surviving data parties' vectors, sent back",
        }
        seen = {(e.step.split("/")[0], e.what, e.form, e.discloser, e.recipient) for e in entries}
        planned = {d.key for d in preview_job(spec, party).disclosures}
        assert seen == planned, f"{party}: recorded {sorted(seen - planned)}, previewed only {sorted(planned - seen)}"
    lender = {e.what for e in res.ledger("lender-c") if e.discloser == "lender-c"}
    assert lender == {  # what a lender sends: keys, encrypted shares, its masked vector, unmasking shares
        "its two X25519 public keys for the round",
        "Shamir shares of its self-mask seed and mask key, each encrypted to one data party",
        "its input vector under a self mask and pairwise masks",
        "its shares of the survivors' self-mask seeds and the dropped parties' mask keys",
    }


def _edited(lender_files: dict[str, Path], tmp: Path, steps: str = STEPS) -> Path:
    spec = tmp / "bad.toml"
    spec.write_text(_spec_text(lender_files, steps))
    return spec


@pytest.mark.parametrize("steps, message", [
    ('[[step]]\nkind = "psi"\n', r"step\[1\] 'psi'.parties: a 'psi' step runs between parties of role "
                                  r"label_party / feature_party; 'lender-a' has role data_party"),
    ('[[step]]\nkind = "horizontal_scorecard"\n', r"params.woe_step: name a horizontal_woe step before this one"),
    ('[[step]]\nkind = "horizontal_woe"\n', r"params.features: list the columns the model uses"),
    ('[[step]]\nkind = "horizontal_woe"\nparties = ["lender-a", "lender-b", "hub"]\nparams = { features = ["AGE"] }\n',
     r"runs between the aggregator and at least 3 data parties"),
    ('[[step]]\nkind = "secure_sum"\nparams = { count_rows = true }\n', r"'hub' has role aggregator"),
])
def test_a_spec_that_mixes_the_kinds_of_job_fails_before_connecting(
    lender_files: dict[str, Path], tmp_path: Path, steps: str, message: str,
) -> None:
    spec = load_job(_edited(lender_files, tmp_path, steps))
    with pytest.raises(JobSpecError, match=message):
        check_runnable(spec, "lender-a")


def test_a_horizontal_step_in_a_vertical_job_is_refused(make_job: Any) -> None:
    spec = load_job(make_job(steps='[[step]]\nkind = "horizontal_woe"\nparams = { features = ["balance"] }\n'))
    with pytest.raises(JobSpecError, match=r"runs between parties of role data_party / aggregator; 'bank' has role label_party"):
        check_runnable(spec, "bank")


def test_a_lender_without_a_column_fails_before_connecting(lender_files: dict[str, Path], tmp_path: Path) -> None:
    short = tmp_path / "short.csv"
    pd.read_csv(lender_files["lender-b"]).drop(columns="BILL_AMT1").to_csv(short, index=False)
    spec = load_job(_edited({**lender_files, "lender-b": short}, tmp_path))
    with pytest.raises(MissingColumnError, match=r"lender-b's dataset short.csv has no column\(s\) \['BILL_AMT1'\]"):
        check_runnable(spec, "lender-b")
    check_runnable(spec, HUB)  # the aggregator reads no file: its checks pass
    check_runnable(spec, "lender-a")
