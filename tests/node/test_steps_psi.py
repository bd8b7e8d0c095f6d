from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import misuan.api as ms
from misuan.errors import JobSpecError
from misuan.node.runner import check_runnable
from misuan.node.spec import load_spec
from misuan.node.steps.psi import ROWS_FILE
from misuan.protocols.psi import IdNormalization, PsiParams


def _step(params: str, parties: str = '["bank", "partner"]') -> str:
    return f'[[step]]\nname = "match"\nkind = "psi"\nparties = {parties}\nparams = {{ {params} }}\n'


def test_psi_step_aligns_rows_and_records_the_ledger(make_job: Callable[..., Path], tmp_path: Path) -> None:
    spec = make_job(("bank", "partner"), steps=_step('reveal = "both", normalize = { case = "casefold" }'))
    # the partner's file: a shifted, shuffled, upper-cased subset of the bank's customers
    partner = pd.read_csv(tmp_path / "partner.csv")
    partner["customer_id"] = [f"C{i + 20:04d}" for i in range(len(partner))]
    partner.sample(frac=1.0, random_state=1).to_csv(tmp_path / "partner.csv", index=False)
    res = ms.simulate(spec, workdir=tmp_path / "work")
    bank_df, partner_df = pd.read_csv(tmp_path / "bank.csv"), pd.read_csv(tmp_path / "partner.csv")
    shared = set(bank_df["customer_id"]) & {c.lower() for c in partner_df["customer_id"]}
    rows = {}
    for p in ("bank", "partner"):
        out = res.outputs(p)["match"]
        assert out["size"] == len(shared) == 20 and out["peer_size"] == 40
        path = tmp_path / "work" / p / "jobs" / "job-1" / "artefacts" / "match" / ROWS_FILE
        assert path.is_file() and [f.name for f in path.parent.iterdir()] == [ROWS_FILE]
        rows[p] = np.load(path, allow_pickle=False)
        whats = {e.what for e in res.ledger(p) if e.step == "match"}  # the default protocol (auto): KKRT-PSI
        assert whats >= {"number of IDs in its set", "OT-extension columns (its IDs' codewords, masked)"}
    ids_b = bank_df["customer_id"].to_numpy()[rows["bank"]]
    ids_p = partner_df["customer_id"].to_numpy()[rows["partner"]]
    assert [c.lower() for c in ids_p] == list(ids_b)


def test_psi_step_size_only_writes_no_rows(make_job: Callable[..., Path], tmp_path: Path) -> None:
    spec = make_job(("bank", "partner"), steps=_step('reveal = "size"'))
    res = ms.simulate(spec, workdir=tmp_path / "work")
    for p in ("bank", "partner"):
        assert res.outputs(p)["match"]["size"] == 40
        assert not list((tmp_path / "work" / p).rglob(ROWS_FILE))


@pytest.mark.parametrize(
    ("params", "parties", "match"),
    [
        ('reveal = "everyone"', '["bank", "partner"]', "reveal"),
        ('normalize = { case = "lower" }', '["bank", "partner"]', "normalize"),
        ('normalize = { colour = "red" }', '["bank", "partner"]', "unknown key"),
        ("batch_size = 0", '["bank", "partner"]', "batch_size"),
        ("speed = 3", '["bank", "partner"]', "unknown key"),
        ("", '["bank", "partner", "insurer"]', r"^step\[1\] 'match'\.parties: PSI runs between exactly two parties"),
    ],
)
def test_psi_step_params_are_checked(make_job: Callable[..., Path], params: str, parties: str, match: str) -> None:
    spec_path = make_job(("bank", "partner", "insurer"), steps=_step(params, parties))
    spec = load_spec(spec_path)
    with pytest.raises(JobSpecError, match=match):
        check_runnable(spec, "bank")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ("batch_size = 10.5", "params.batch_size: must be an integer from 1 to 1048576, not 10.5"),
        ("batch_size = true", "params.batch_size: must be an integer from 1 to 1048576, not true"),
        ('workers = "4"', "params.workers: must be an integer from 1 to 4096 (or leave it out), not '4'"),
        ("reveal = true", "params.reveal: must be text, not true"),
        ("normalize = { case = 3 }", "params.normalize.case: must be one of 'keep', 'casefold', 'upper', not 3"),
        ("normalize = { strip = 1 }", "params.normalize.strip: must be true or false, not 1"),
        ('normalize = "casefold"', "params.normalize: must be a table with keys among case, country_code"),
        ('normalize = { country_code = "+86" }', "params.normalize.country_code: must be 1-3 digits, not '+86'"),
    ],
)
def test_wrong_types_are_refused_before_connecting_with_the_field_path_once(
    make_job: Callable[..., Path], params: str, message: str
) -> None:
    spec = load_spec(make_job(("bank", "partner"), steps=_step(params)))
    with pytest.raises(JobSpecError) as info:
        check_runnable(spec, "bank")
    text = str(info.value)
    assert text.startswith(f"step[1] 'match'.{message}"), text
    assert text.count("params") == 1


def test_the_normalisation_is_parsed_once_for_every_later_step(make_job: Callable[..., Path]) -> None:
    spec = load_spec(make_job(("bank", "partner"), steps=_step('normalize = { case = "casefold", kind = "text" }')))
    checked = check_runnable(spec, "bank")  # the run's StepContext.param(PsiParams, "match") reads this
    assert checked.params["match"][PsiParams].normalize == IdNormalization(case="casefold")
