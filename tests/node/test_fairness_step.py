"""The ``fairness`` step: group metrics of the joint model's decisions by the partner's protected
attributes equal the plaintext computation on the pooled rows; the partner sees only ciphertexts;
a refused attribute among the model's features stops the job before it connects."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from misuan.api import load_job, simulate
from misuan.datasets import taiwan
from misuan.errors import DataError
from misuan.lending.fairness import GroupCounts, audit_groups, group_rows, load_policy
from misuan.node.runner import check_runnable
from misuan.protocols.group_sums import OTHER, merge_small_groups


def _spec(tmp: Path, bank: Path, partner: Path, features: list[str], fairness: str) -> Path:
    feats = ", ".join(f'"{c}"' for c in features)
    path = tmp / "job.toml"
    path.write_text(textwrap.dedent(f"""\
        version = 1
        [job]
        id = "fair"
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
        [[step]]
        kind = "psi"
        params = {{ reveal = "both", normalize = {{ case = "casefold" }} }}
        [[step]]
        kind = "secureboost"
        params = {{ n_estimators = 3, max_depth = 3, test_fraction = 0.3, split_seed = 4 }}
        [[step]]
        kind = "evaluate"
        [[step]]
        kind = "fairness"
        params = {fairness}
        """), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, pd.DataFrame, pd.DataFrame]:
    d = tmp_path_factory.mktemp("fair-data")
    bank, partner = taiwan.split_for_demo(seed=2)
    bank, partner = bank.iloc[:3000], partner.iloc[:3000]
    bank.to_csv(d / "bank.csv", index=False)
    partner.to_csv(d / "partner.csv", index=False)
    return d / "bank.csv", d / "partner.csv", bank, partner


@pytest.fixture(scope="module")
def audited(files: tuple[Path, Path, pd.DataFrame, pd.DataFrame], tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("fair")
    spec = _spec(tmp, files[0], files[1], ["AGE", "BILL_AMT1", "PAY_AMT1"],
                 '{ approve_below = 0.3, policy = "us", attributes = ["SEX", "MARRIAGE", "AGE"] }')
    return simulate(spec, workdir=tmp / "w")


def test_group_metrics_equal_the_plaintext_computation_on_the_pooled_rows(audited, files) -> None:  # type: ignore[no-untyped-def]
    _, _, _, partner = files
    bank_out = audited.outputs("bank")
    ev, fair = bank_out["evaluate"], bank_out["fairness"]
    policy = load_policy("us")
    # the plaintext twin: join the hold-out IDs with the partner's attributes, group, count
    pd_ = np.asarray(ev["scores"])
    y = np.asarray(ev["y_true"])
    ids = pd.Series(ev["test_ids"]).map(taiwan.normalize_demo_id)
    attrs = partner.assign(key=partner["customer_id"].map(taiwan.normalize_demo_id)).set_index("key")
    joined = attrs.loc[ids.to_numpy()]
    approved = pd_ < 0.3
    audits = {a["attribute"]: a for a in fair["audits"]}
    assert set(audits) == {"SEX", "MARRIAGE", "AGE"}
    for column in ("SEX", "MARRIAGE", "AGE"):
        attr = policy.attribute_of(column)
        assert attr is not None
        idx, labels = group_rows(attr, joined[column].to_numpy())
        idx, kept = merge_small_groups(idx, labels, policy.min_group_size)
        counts = [GroupCounts(lab, int((idx == g).sum()), int((approved & (idx == g)).sum()),
                              int((approved & (y == 0) & (idx == g)).sum()), int(((y == 0) & (idx == g)).sum()),
                              int(((y == 1) & (idx == g)).sum()), float(pd_[idx == g].sum())) for g, lab in enumerate(kept)]
        want = audit_groups(column, attr, counts, policy).to_dict()
        got = audits[column]
        assert [g["group"] for g in got["groups"]] == [g["group"] for g in want["groups"]]
        for g_got, g_want in zip(got["groups"], want["groups"], strict=True):
            assert g_got["rows"] == g_want["rows"] and g_got["approval_rate"] == g_want["approval_rate"]
            assert g_got["approval_rate_repaid"] == g_want["approval_rate_repaid"]
            assert g_got["mean_pd"] == pytest.approx(g_want["mean_pd"], abs=1e-6)
        assert got["approval_ratio"] == pytest.approx(want["approval_ratio"])
        assert got["findings"] == want["findings"]
    # the rare categories (unknown, other: a few dozen hold-out rows between them) never appear alone
    assert {g["group"] for g in audits["MARRIAGE"]["groups"]} <= {"married", "single", OTHER}


def test_the_partner_sees_only_ciphertexts_and_the_bank_only_group_sums(audited) -> None:  # type: ignore[no-untyped-def]
    for party in ("bank", "partner"):
        seen = {(e.what, e.discloser, e.recipient, e.form) for e in audited.ledger(party) if e.step == "fairness"}
        assert seen == {
            ("its per-row columns (decision, outcome, PD), encrypted under its key", "bank", "partner", "ciphertext"),
            ("per group of each protected attribute: the row count and the sums of the label party's columns",
             "partner", "bank", "aggregate"),
        }
    assert audited.outputs("partner")["fairness"]["groups"]["SEX"] == ["male", "female"]


def test_a_refused_protected_feature_stops_the_job_before_it_connects(files, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spec = load_job(_spec(tmp_path, files[0], files[1], ["SEX", "AGE"], '{ policy = "us" }'))
    with pytest.raises(DataError, match=r"feature 'SEX' is the protected attribute 'sex' under policy US"):
        check_runnable(spec, "partner")
    check_runnable(spec, "bank")  # the bank holds no protected feature
    lenient = load_job(_spec(tmp_path, files[0], files[1], ["SEX", "AGE"], '{ policy = "us", enforce = false }'))
    check_runnable(lenient, "partner")
