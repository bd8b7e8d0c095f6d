"""Anchored ledgers: every way finding 1 of issue #11 changed a ledger is now caught.

Two parties run jobs; then the bank's ledger is tampered with as an attacker with write access to
its SQLite file would (delete the newest row, the newest 40, all rows; edit the newest row and
recompute its hash; edit an older row and recompute every later hash). Each case must be caught
three ways: ``misuan ledger verify`` with the partner's export (``--peer-anchors``), ``misuan ledger
verify --expected-head`` with the head kept elsewhere, and the runner, which refuses the next job
before appending anything, both from the job's ``state.json`` and, when that was doctored too, from
the anchor the partner holds.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

import misuan.api as ms
from misuan.audit.ledger import Ledger
from misuan.cli import main as cli
from misuan.crypto.anchor import NODE_KEY, verify_anchor
from misuan.errors import LedgerTamperedError
from tests.jobfiles import SUM_STEPS, spec_text, write_dataset
from tests.ledger_tamper import TAMPERS, tamper

# job specs with one step each: a secure sum over many columns records many rows per job
_WIDE = 'params = { columns = ["balance", "score"], scale = 100, count_rows = true }'


def _steps(n: int) -> str:
    return "".join(f'\n[[step]]\nkind = "secure_sum"\nname = "sum{i}"\n{_WIDE}\n' for i in range(n))


def _run_job(root: Path, job_id: str, steps: str = SUM_STEPS) -> None:
    spec = root / f"{job_id}.toml"
    spec.write_text(spec_text(("bank", "partner"), steps, job_id=job_id))
    ms.simulate(spec, workdir=root / "work", timeout_s=20)


def _ledger(root: Path, party: str = "bank") -> Path:
    return root / "work" / party / "ledger.sqlite"


@pytest.fixture
def two_jobs(tmp_path: Path) -> Path:
    for i, p in enumerate(("bank", "partner")):
        write_dataset(tmp_path / f"{p}.csv", p, seed=i, label=i == 0)
    _run_job(tmp_path, "job-a", _steps(8))
    _run_job(tmp_path, "job-b", _steps(8))
    return tmp_path


def test_jobs_end_with_signed_anchors_held_by_the_peer(two_jobs: Path) -> None:
    with Ledger(_ledger(two_jobs, "partner")) as partner, Ledger(_ledger(two_jobs)) as bank:
        held = partner.anchors(signer="bank", holder="partner")
        assert [a.job_id for a in held] == ["job-a", "job-b"]
        assert held[-1].length == bank.length() >= 41 and held[-1].head == bank.head()
        assert held[-1].key_kind == NODE_KEY  # in-memory simulation: the party directory's own key
        for a in held:
            verify_anchor(a, signer="bank")
        # the bank keeps what it handed out, and the partner's anchors
        assert [a.job_id for a in bank.anchors(signer="bank", holder="partner")] == ["job-a", "job-b"]
        assert bank.anchors(signer="partner", holder="bank")[-1].head == partner.head()
        assert bank.party == "bank" and partner.party == "partner"
    state = json.loads((two_jobs / "work" / "bank" / "jobs" / "job-b" / "state.json").read_text())
    assert (state["ledger_length"], state["ledger_head"]) == (held[-1].length, held[-1].head)


@pytest.mark.parametrize("case", list(TAMPERS))
def test_every_tampering_of_finding_1_is_caught(two_jobs: Path, case: str, capsys: pytest.CaptureFixture[str]) -> None:
    export = two_jobs / "partner.json"
    assert cli(["ledger", "export", "--ledger", str(_ledger(two_jobs, "partner")), "--out", str(export)]) == 0
    with Ledger(_ledger(two_jobs)) as bank:
        expected = f"{bank.length()}:{bank.head()}"
    ok = ["ledger", "verify", "--ledger", str(_ledger(two_jobs))]
    assert cli([*ok, "--peer-anchors", str(export)]) == 0
    assert cli([*ok, "--expected-head", expected]) == 0

    tamper(_ledger(two_jobs), TAMPERS[case])
    capsys.readouterr()
    assert cli(ok) == 0  # the chain alone still looks intact: that was finding 1
    assert cli([*ok, "--peer-anchors", str(export)]) == 8
    err = capsys.readouterr().err
    assert "the ledger was truncated" in err or "the ledger was rewritten" in err, err
    assert "bank's anchor held by partner" in err
    assert cli([*ok, "--expected-head", expected]) == 8

    # the runner refuses the next job before appending anything: from the job state ...
    before = _rows_count(_ledger(two_jobs))
    with pytest.raises(LedgerTamperedError, match=r"the state.json of job 'job-[ab]'"):
        _run_job(two_jobs, "job-c")
    # ... and, once the forger doctored state.json too, from the anchor the partner holds
    for state_path in (two_jobs / "work" / "bank" / "jobs").glob("*/state.json"):
        state = json.loads(state_path.read_text())
        state.update(ledger_length=None, ledger_head=None)
        state_path.write_text(json.dumps(state))
    with pytest.raises(LedgerTamperedError, match="the anchor partner holds"):
        _run_job(two_jobs, "job-d")
    assert _rows_count(_ledger(two_jobs)) == before


def _rows_count(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("SELECT COUNT(*) FROM disclosures").fetchone()[0])
    finally:
        db.close()


def test_ledger_show_exits_non_zero_on_a_tampered_ledger(two_jobs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _ledger(two_jobs)
    assert cli(["ledger", "show", "--ledger", str(path)]) == 0
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("UPDATE disclosures SET what = 'nothing' WHERE seq = 3")
    db.close()
    capsys.readouterr()
    assert cli(["ledger", "show", "--ledger", str(path)]) == 8
    out = capsys.readouterr()
    assert "#3 " in out.out and "was edited" in out.err  # shown, but the exit code says it fails


def test_a_forged_anchor_does_not_verify(two_jobs: Path) -> None:
    import dataclasses

    with Ledger(_ledger(two_jobs, "partner")) as partner:
        anchor = partner.anchors(signer="bank")[-1]
    with pytest.raises(LedgerTamperedError, match="does not verify"):
        verify_anchor(dataclasses.replace(anchor, length=anchor.length - 1))
    with pytest.raises(LedgerTamperedError, match="came from 'mallory'"):
        verify_anchor(anchor, signer="mallory")
