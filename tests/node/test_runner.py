from __future__ import annotations

import dataclasses
import json
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest

import misuan.api as ms
from misuan.errors import (
    ConfigError,
    DataError,
    DuplicateIdError,
    EmptyIdError,
    JobError,
    JobSpecError,
    MissingColumnError,
    PeerDisconnectedError,
)
from misuan.net.memory import MemoryNetwork
from misuan.node import steps
from misuan.node.runner import run_party
from misuan.node.spec import load_spec
from misuan.node.steps import secure_sum as secure_sum_step
from tests.jobfiles import PARTIES3


def _plain_totals(tmp: Path, parties: tuple[str, ...]) -> tuple[int, int, int]:
    dfs = [pd.read_csv(tmp / f"{p}.csv") for p in parties]
    return (
        int(sum(df["balance"].sum() for df in dfs)),
        sum(len(df) for df in dfs),
        int(round(sum((df["score"] * 100).round().sum() for df in dfs))),
    )


@pytest.mark.parametrize("parties", [("bank", "partner"), PARTIES3])
def test_secure_sum_job_matches_plaintext_and_ledgers_show_disclosures(
    make_job: Callable[..., Path], tmp_path: Path, parties: tuple[str, ...]
) -> None:
    spec = make_job(parties)
    res = ms.simulate(spec, workdir=tmp_path / "work")
    balance, rows, score = _plain_totals(tmp_path, parties)
    for p in parties:
        out = res.outputs(p)
        assert out["totals"]["total"] == [balance] and out["totals"]["row_count"] == rows
        assert out["scores"]["total"] == [score] and out["scores"]["values"] == [score / 100]
        entries = res.ledger(p)
        for step in ("totals", "scores"):
            learned = [e for e in entries if e.step == step and e.recipient == p]
            assert sorted(e.discloser for e in learned if e.form == "aggregate") == sorted(set(parties) - {p})
            assert [e.what for e in learned if e.discloser == "all"] == ["sum of all parties' vectors"]
            told = [e for e in entries if e.step == step and e.discloser == p]
            assert sorted(e.recipient for e in told) == sorted(set(parties) - {p})
        assert all(e.job_id == "job-1" for e in entries)
        state = json.loads((tmp_path / "work" / p / "jobs" / "job-1" / "state.json").read_text())
        assert state["status"] == "completed" and state["ledger_head"] == entries[-1].hash
        assert {s["status"] for s in state["steps"].values()} == {"done"}


def test_step_over_a_subset_of_parties(make_job: Callable[..., Path], tmp_path: Path) -> None:
    spec = make_job(
        PARTIES3,
        steps='[[step]]\nkind = "secure_sum"\nparties = ["insurer", "bank"]\nparams = { columns = ["balance"] }\n',
    )
    res = ms.simulate(spec, workdir=tmp_path / "w")
    want = int(sum(pd.read_csv(tmp_path / f"{p}.csv")["balance"].sum() for p in ("bank", "insurer")))
    assert res.outputs("bank")["secure_sum"]["total"] == [want] == res.outputs("insurer")["secure_sum"]["total"]
    assert res.outputs("telecom")["secure_sum"] == {}
    assert res.ledger("telecom") == []  # telecom took no part and learned nothing
    doc = json.loads((tmp_path / "w" / "telecom" / "jobs" / "job-1" / "steps" / "secure_sum.json").read_text())
    assert doc["participated"] is False


@pytest.fixture
def fail_scores_for_bank() -> Iterator[None]:
    """Make the secure_sum adapter fail on step 'scores' for the bank (a simulated crash)."""
    real = secure_sum_step.run_secure_sum

    def flaky(ctx: steps.StepContext) -> steps.StepResult:
        if ctx.step.name == "scores" and ctx.party == "bank":
            (ctx.artefact_dir / "half-written.bin").write_bytes(b"x" * 10)
            raise RuntimeError("simulated crash")
        return real(ctx)

    steps.register_step(dataclasses.replace(secure_sum_step.KIND, run=flaky), replace=True)
    yield
    steps.register_step(secure_sum_step.KIND, replace=True)


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "ledger.sqlite" not in p.name)


def test_crash_keeps_completed_steps_and_resume_finishes(
    make_job: Callable[..., Path], tmp_path: Path, fail_scores_for_bank: None
) -> None:
    spec = make_job()
    work = tmp_path / "work"
    with pytest.raises(JobError, match="step 'scores' failed for bank: RuntimeError: simulated crash"):
        ms.simulate(spec, workdir=work)
    for p in ("bank", "partner"):
        jd = work / p / "jobs" / "job-1"
        assert _files(jd) == ["state.json", "steps/totals.json"]  # no partial output, no staging left
        state = json.loads((jd / "state.json").read_text())
        assert state["status"] == "failed" and state["steps"]["scores"]["status"] == "failed"
    assert "PeerDisconnectedError" in json.loads((work / "partner/jobs/job-1/state.json").read_text())["error"]
    totals_before = (work / "bank/jobs/job-1/steps/totals.json").read_text()

    with pytest.raises(ConfigError, match="already has results"):
        steps.register_step(secure_sum_step.KIND, replace=True)
        ms.simulate(spec, workdir=work)

    res = ms.simulate(spec, workdir=work, resume=True)
    for p in ("bank", "partner"):
        assert res.parties[p].skipped == ["totals"] and res.parties[p].ran == ["scores"]
        assert _files(work / p / "jobs" / "job-1") == ["state.json", "steps/scores.json", "steps/totals.json"]
        # the totals step ran once: its disclosures are in the ledger once
        assert len([e for e in res.ledger(p) if e.step == "totals" and e.discloser == "all"]) == 1
    assert (work / "bank/jobs/job-1/steps/totals.json").read_text() == totals_before


def test_resume_needs_every_party(make_job: Callable[..., Path], tmp_path: Path) -> None:
    """If one party does not resume, every party reruns every step (nobody is left out of sync)."""
    spec_path = make_job()
    work = tmp_path / "w"
    ms.simulate(spec_path, workdir=work)
    spec = load_spec(spec_path)
    import shutil

    shutil.rmtree(work / "partner" / "jobs")  # partner lost its results
    net = MemoryNetwork(spec.party_names, job_id=spec.job_id)
    out = {}

    def go(p: str) -> None:
        out[p] = run_party(
            spec, p, party_dir=work / p, resume=True, progress=None,
            open_channel=lambda rec: net.channel(p, recorder=rec, timeout_s=10),
        )

    threads = [threading.Thread(target=go, args=(p,)) for p in spec.party_names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out["bank"].ran == out["partner"].ran == ["totals", "scores"]
    assert out["bank"].outputs == out["partner"].outputs


def test_parties_with_different_specs_refuse_to_run(make_job: Callable[..., Path], tmp_path: Path) -> None:
    spec_path = make_job()
    spec = load_spec(spec_path)
    spec_path.write_text(spec_path.read_text().replace("scale = 100", "scale = 10"))
    other = load_spec(spec_path)
    net = MemoryNetwork(spec.party_names, job_id=spec.job_id)
    errors: dict[str, BaseException] = {}

    def go(p: str, s: object) -> None:
        try:
            run_party(s, p, party_dir=tmp_path / p, progress=None,  # type: ignore[arg-type]
                      open_channel=lambda rec: net.channel(p, recorder=rec, timeout_s=10))
        except BaseException as exc:  # noqa: BLE001
            errors[p] = exc

    threads = [threading.Thread(target=go, args=a) for a in (("bank", spec), ("partner", other))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert isinstance(errors["bank"], JobSpecError) and "partner runs a different version" in str(errors["bank"])
    assert not (tmp_path / "bank" / "jobs" / "job-1" / "steps" / "totals.json").exists()


def test_peer_failing_mid_job_stops_the_other_cleanly(
    make_job: Callable[..., Path], tmp_path: Path, fail_scores_for_bank: None
) -> None:
    spec = load_spec(make_job())
    net = MemoryNetwork(spec.party_names, job_id=spec.job_id)
    got: dict[str, BaseException] = {}

    def go(p: str) -> None:
        try:
            run_party(spec, p, party_dir=tmp_path / p, progress=None,
                      open_channel=lambda rec: net.channel(p, recorder=rec, timeout_s=20))
        except BaseException as exc:  # noqa: BLE001
            got[p] = exc

    threads = [threading.Thread(target=go, args=(p,)) for p in spec.party_names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    # whether the partner was sending or receiving when the bank went away, the error names the bank
    assert isinstance(got["partner"], PeerDisconnectedError)
    assert re.search(r"bank (disconnected|has closed its channel)", str(got["partner"])), got["partner"]
    assert _files(tmp_path / "partner" / "jobs" / "job-1") == ["state.json", "steps/totals.json"]


def _rewrite_csv(path: Path, edit: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    df = pd.read_csv(path, dtype={"customer_id": str})
    edit(df).to_csv(path, index=False)


def test_data_errors_name_the_column_and_lines(make_job: Callable[..., Path], tmp_path: Path) -> None:
    spec = make_job()
    _rewrite_csv(tmp_path / "partner.csv", lambda df: df.rename(columns={"customer_id": "cust"}))
    with pytest.raises(MissingColumnError, match=r"partner's dataset partner.csv has no id column 'customer_id'.*'cust'"):
        ms.simulate(spec, workdir=tmp_path / "w1")

    def dup(df: pd.DataFrame) -> pd.DataFrame:
        df = df.rename(columns={"cust": "customer_id"})
        df.loc[5, "customer_id"] = df.loc[2, "customer_id"]
        return df

    _rewrite_csv(tmp_path / "partner.csv", dup)
    with pytest.raises(DuplicateIdError, match=r"repeats 1 id\(s\), e.g. \['c0002'\], on file lines 4, 7"):
        ms.simulate(spec, workdir=tmp_path / "w2")

    def blank(df: pd.DataFrame) -> pd.DataFrame:
        df.loc[5, "customer_id"] = None
        return df

    _rewrite_csv(tmp_path / "partner.csv", blank)
    with pytest.raises(EmptyIdError, match=r"empty on 1 row\(s\), file line\(s\) 7"):
        ms.simulate(spec, workdir=tmp_path / "w3")
    (tmp_path / "partner.csv").unlink()
    with pytest.raises(DataError, match=r"party\[2\] 'partner'.dataset.path: dataset file .*partner.csv does not exist"):
        ms.simulate(spec, workdir=tmp_path / "w4")


def test_bad_label_and_step_column(make_job: Callable[..., Path], tmp_path: Path) -> None:
    spec = make_job()

    def bad_label(df: pd.DataFrame) -> pd.DataFrame:
        df.loc[3, "default_90d"] = 2
        return df

    _rewrite_csv(tmp_path / "bank.csv", bad_label)
    with pytest.raises(DataError, match=r"label column 'default_90d' must be 0 or 1.*line\(s\) 5"):
        ms.simulate(spec, workdir=tmp_path / "w1")
    _rewrite_csv(tmp_path / "bank.csv", lambda df: df.assign(default_90d=0).drop(columns=["balance"]))
    with pytest.raises(MissingColumnError, match=r"no column 'balance' to add \(step\[1\] 'totals'\.params\.columns\)"):
        ms.simulate(spec, workdir=tmp_path / "w2")
    assert not (tmp_path / "w2").exists()  # refused before any party started


def test_secure_sum_params_are_checked_before_running(make_job: Callable[..., Path], tmp_path: Path) -> None:
    spec = make_job(steps='[[step]]\nkind = "secure_sum"\nparams = { columns = ["balance"], scale = 0 }\n')
    with pytest.raises(JobSpecError, match=r"step\[1\] 'secure_sum'.params.scale: must be an integer from 1 to"):
        ms.simulate(spec, workdir=tmp_path / "w")
    assert not (tmp_path / "w").exists()


def test_kind_without_adapter_is_refused_up_front(
    make_job: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # every kind of this build has an adapter; a build without one must refuse the spec up front
    monkeypatch.delitem(steps.STEPS, "woe")
    spec = make_job(steps='[[step]]\nkind = "woe"\n')
    with pytest.raises(JobSpecError, match=r"step\[1\] 'woe'.kind: unknown step kind 'woe'; use one of"):
        ms.simulate(spec, workdir=tmp_path / "w")


@pytest.fixture
def artefact_adapter() -> Iterator[None]:
    """secure_sum that also saves its total as an artefact, which the next step reads back."""
    real = secure_sum_step.run_secure_sum

    def run(ctx: steps.StepContext) -> steps.StepResult:
        res = real(ctx)
        if ctx.step.name == "totals":
            (ctx.artefact_dir / "sub").mkdir()
            (ctx.artefact_dir / "sub" / "total.json").write_text(json.dumps(res.outputs["total"]))
            return steps.StepResult(res.outputs, ["sub/total.json"])
        if ctx.step.name == "scores":
            res.outputs["earlier"] = json.loads(ctx.artefact_of("totals", "sub/total.json").read_text())
        return res

    steps.register_step(dataclasses.replace(secure_sum_step.KIND, run=run), replace=True)
    yield
    steps.register_step(secure_sum_step.KIND, replace=True)


def test_artefacts_are_committed_and_readable_by_later_steps(
    make_job: Callable[..., Path], tmp_path: Path, artefact_adapter: None
) -> None:
    spec = make_job()
    res = ms.simulate(spec, workdir=tmp_path / "w")
    for p in ("bank", "partner"):
        out = res.outputs(p)
        assert out["scores"]["earlier"] == out["totals"]["total"]
        jd = tmp_path / "w" / p / "jobs" / "job-1"
        assert (jd / "artefacts" / "totals" / "sub" / "total.json").is_file()
        assert json.loads((jd / "steps" / "totals.json").read_text())["artefacts"] == ["sub/total.json"]
        assert not list((jd / "artefacts").glob(".staging-*"))
    # a resumed run still finds the artefact (it is re-checked before the step counts as done)
    (tmp_path / "w" / "bank" / "jobs" / "job-1" / "steps" / "scores.json").unlink()
    again = ms.simulate(spec, workdir=tmp_path / "w", resume=True)
    assert again.parties["bank"].ran == again.parties["partner"].ran == ["scores"]
    assert again.outputs("bank")["scores"]["earlier"] == res.outputs("bank")["totals"]["total"]


def test_changed_dataset_invalidates_completed_steps(make_job: Callable[..., Path], tmp_path: Path) -> None:
    spec = make_job()
    ms.simulate(spec, workdir=tmp_path / "w")
    make_job()  # rewrites the datasets: new modification times
    again = ms.simulate(spec, workdir=tmp_path / "w", resume=True)
    assert again.parties["bank"].ran == ["totals", "scores"] and again.parties["bank"].skipped == []


def test_bad_adapter_results_are_refused(make_job: Callable[..., Path], tmp_path: Path) -> None:
    cases: list[tuple[Callable[[steps.StepContext], object], str]] = [
        (lambda ctx: steps.StepResult({"x": object()}), "outputs are not JSON-able"),
        (lambda ctx: steps.StepResult({}, ["missing.bin"]), "artefact 'missing.bin' is not a file"),
        (lambda ctx: {"total": 1}, "returned dict, not StepResult"),
        (lambda ctx: ctx.artefact_of("nope", "f"), "does not run before it"),
    ]
    try:
        for i, (fn, message) in enumerate(cases):
            steps.register_step(dataclasses.replace(secure_sum_step.KIND, run=fn), replace=True)  # type: ignore[arg-type]
            with pytest.raises((JobError, JobSpecError), match=message):
                ms.simulate(make_job(), workdir=tmp_path / f"w{i}")
            assert not (tmp_path / f"w{i}" / "bank" / "jobs" / "job-1" / "steps" / "totals.json").exists()
    finally:
        steps.register_step(secure_sum_step.KIND, replace=True)


def test_a_run_that_completed_no_step_can_start_again_without_resume(
    make_job: Callable[..., Path], tmp_path: Path
) -> None:
    spec = make_job()
    (tmp_path / "partner.csv").rename(tmp_path / "p.csv")
    with pytest.raises(DataError):
        ms.simulate(spec, workdir=tmp_path / "w", progress=None)
    (tmp_path / "p.csv").rename(tmp_path / "partner.csv")
    # check_runnable failed before any state was written; now fail inside the job instead
    def fails(ctx: steps.StepContext) -> steps.StepResult:
        raise DataError(f"{ctx.party}: a failure inside the step")

    steps.register_step(dataclasses.replace(secure_sum_step.KIND, run=fails), replace=True)
    try:
        with pytest.raises(DataError, match="a failure inside the step"):
            ms.simulate(spec, workdir=tmp_path / "w")
    finally:
        steps.register_step(secure_sum_step.KIND, replace=True)
    assert json.loads((tmp_path / "w" / "bank" / "jobs" / "job-1" / "state.json").read_text())["status"] == "failed"
    assert ms.simulate(spec, workdir=tmp_path / "w").parties["bank"].ran == ["totals", "scores"]


def test_abort_mid_step_leaves_no_output_and_marks_interrupted(make_job: Callable[..., Path], tmp_path: Path) -> None:
    real = secure_sum_step.run_secure_sum

    def abort(ctx: steps.StepContext) -> steps.StepResult:
        if ctx.step.name == "scores" and ctx.party == "bank":
            (ctx.artefact_dir / "partial.bin").write_bytes(b"half")
            raise KeyboardInterrupt  # what the node's second SIGTERM raises in its main thread
        return real(ctx)

    steps.register_step(dataclasses.replace(secure_sum_step.KIND, run=abort), replace=True)
    try:
        with pytest.raises(KeyboardInterrupt):
            ms.simulate(make_job(), workdir=tmp_path / "w")
    finally:
        steps.register_step(secure_sum_step.KIND, replace=True)
    jd = tmp_path / "w" / "bank" / "jobs" / "job-1"
    assert _files(jd) == ["state.json", "steps/totals.json"]
    state = json.loads((jd / "state.json").read_text())
    assert state["status"] == "interrupted" and state["steps"]["scores"]["status"] == "failed"


def test_simulate_accepts_a_dict_spec_as_in_a_notebook(make_job: Callable[..., Path], tmp_path: Path) -> None:
    from misuan.toml_files import read_toml

    doc = read_toml(make_job())
    res = ms.simulate(doc, base_dir=tmp_path)
    assert res.workdir.is_dir() and res.outputs("partner")["totals"]["row_count"] == 80
    assert res.ledger_path("bank") == res.workdir / "bank" / "ledger.sqlite"
    with pytest.raises(KeyError, match="'carol' is not a party"):
        res.outputs("carol")
    import shutil

    shutil.rmtree(res.workdir)  # simulate made it under the system's temporary directory


def test_the_example_job_runs(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2] / "examples" / "secure_sum"
    res = ms.simulate(root / "job.toml", workdir=tmp_path / "w")
    bank, partner = pd.read_csv(root / "bank.csv"), pd.read_csv(root / "partner.csv")
    out = res.outputs("partner")
    assert out["customers"]["row_count"] == len(bank) + len(partner)
    want = round(bank["loan_balance"].sum() * 100) + round((partner["outstanding_debt"] * 100).round().sum())
    assert out["exposure"]["total"] == [want]


def test_register_step_takes_a_whole_kind_and_a_kind_without_params_refuses_any(
    make_job: Callable[..., Path], tmp_path: Path
) -> None:
    def never_run(ctx: steps.StepContext) -> steps.StepResult:
        raise AssertionError("refused before running")

    toy = steps.StepKind("toy", never_run)
    assert steps.register_step(toy) is None
    try:
        with pytest.raises(ValueError, match="already registered"):
            steps.register_step(toy)
        assert steps.register_step(dataclasses.replace(toy, summary="again"), replace=True) is toy
        spec = make_job(steps='[[step]]\nkind = "toy"\nparams = { speed = 3 }\n')
        with pytest.raises(JobSpecError, match=r"^step\[1\] 'toy'\.params: unknown key\(s\) \['speed'\]; this takes no"):
            ms.simulate(spec, workdir=tmp_path / "w")
    finally:
        steps.STEPS.pop("toy")
