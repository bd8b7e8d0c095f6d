from __future__ import annotations

import inspect
import json
import re
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from misuan import cli, errors
from misuan.errors import EXIT_CODES, MisuanError
from tests.jobfiles import PARTIES3, free_ports, write_job

ERROR_CLASSES = [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, MisuanError)]


def run_cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "misuan.cli", *argv], capture_output=True, text=True, timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )


def test_every_exit_code_has_help_and_every_error_class_maps_to_one() -> None:
    assert all(isinstance(t, str) and len(t) >= 7 for t in EXIT_CODES.values())
    assert {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 130} <= set(EXIT_CODES)
    for cls in ERROR_CLASSES:
        assert cls.exit_code in EXIT_CODES, cls
        assert cls.help, cls


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_error_class_gives_its_exit_code_and_one_line_message(
    cls: type[MisuanError], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fail(args: object) -> int:
        raise cls("the thing named here is wrong")

    monkeypatch.setattr(cli, "cmd_version", fail)
    assert cli.main(["version"]) == cls.exit_code
    err = capsys.readouterr().err
    assert err == f"misuan: error: the thing named here is wrong\n  hint: {cls.help}\n"


def test_interrupt_unexpected_and_debug(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def interrupt(args: object) -> int:
        raise KeyboardInterrupt

    def bug(args: object) -> int:
        raise ZeroDivisionError("oops")

    monkeypatch.setattr(cli, "cmd_version", interrupt)
    assert cli.main(["version"]) == 130
    monkeypatch.setattr(cli, "cmd_version", bug)
    assert cli.main(["version"]) == 1
    assert "internal error: ZeroDivisionError: oops" in capsys.readouterr().err
    assert cli.main(["--debug", "version"]) == 1
    assert "Traceback (most recent call last)" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [[], ["certs", "init"], ["node", "start"], ["submit"], ["run"], ["simulate"], ["ledger", "show"],
     ["ledger", "verify"], ["ledger", "export"], ["demo"], ["version"], ["exit-codes"], ["params"]],
)
def test_help_for_every_command(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main([*argv, "--help"])
    assert exc.value.code == 0
    assert "usage: misuan" in capsys.readouterr().out


def test_version_and_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["version"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("misuan 0.1.0")
    assert "PSI X25519: Intel crypto_mb" in out or "PSI X25519: OpenSSL (" in out
    with pytest.raises(SystemExit) as exc:
        cli.main(["frobnicate"])
    assert exc.value.code == 2


def test_bad_spec_exits_2_naming_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_job(tmp_path)
    spec.write_text(spec.read_text().replace('role = "feature_party"', 'role = "features"'))
    assert cli.main(["simulate", str(spec), "--in-process", "--workdir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert "misuan: error: " in err and "party[2] 'partner'.role: must be one of" in err
    assert "hint: the job spec is invalid" in err
    assert cli.main(["run", str(spec), "--as", "bank"]) == 2


def test_data_errors_exit_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_job(tmp_path)
    (tmp_path / "partner.csv").rename(tmp_path / "moved.csv")
    args = ["simulate", str(spec), "--in-process", "--workdir", str(tmp_path / "w")]
    assert cli.main(args) == 3
    assert "partner.csv does not exist" in capsys.readouterr().err
    df = pd.read_csv(tmp_path / "moved.csv", dtype=str)
    df.drop(columns=["customer_id"]).to_csv(tmp_path / "partner.csv", index=False)
    assert cli.main([*args[:-1], str(tmp_path / "w2")]) == 3
    assert "has no id column 'customer_id'" in capsys.readouterr().err
    df.loc[3, "customer_id"] = df.loc[1, "customer_id"]
    df.to_csv(tmp_path / "partner.csv", index=False)
    assert cli.main([*args[:-1], str(tmp_path / "w3")]) == 3
    assert "repeats 1 id(s)" in capsys.readouterr().err


def test_ledger_commands_and_tamper_exit_8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_job(tmp_path)
    w = str(tmp_path / "w")
    assert cli.main(["simulate", str(spec), "--in-process", "--workdir", w]) == 0
    capsys.readouterr()
    assert cli.main(["ledger", "show", "--workdir", w, "--as", "bank", "--job", "job-1"]) == 0
    out = capsys.readouterr().out
    assert "job-1/totals: partner -> bank: partial sum of additive shares [2, aggregate]" in out
    assert cli.main(["ledger", "verify", "--workdir", w, "--as", "bank"]) == 0
    assert "6 row(s), hash chain intact" in capsys.readouterr().out
    assert cli.main(["ledger", "export", "--workdir", w, "--as", "bank", "--out", str(tmp_path / "l.json")]) == 0
    assert len(json.loads((tmp_path / "l.json").read_text())["rows"]) == 6
    with sqlite3.connect(tmp_path / "w" / "bank" / "ledger.sqlite") as db:
        db.execute("UPDATE disclosures SET recipient = 'nobody' WHERE seq = 4")
    capsys.readouterr()
    assert cli.main(["ledger", "verify", "--ledger", str(tmp_path / "w" / "bank" / "ledger.sqlite")]) == 8
    assert "ledger row #4 (job 'job-1', step 'scores') was edited" in capsys.readouterr().err
    assert cli.main(["ledger", "show", "--as", "carol", "--workdir", w]) == 2


def test_certs_init(tmp_path: Path) -> None:
    assert cli.main(["certs", "init", "--dir", str(tmp_path / "c"), "--parties", "bank,partner"]) == 0
    assert {p.name for p in (tmp_path / "c").iterdir()} >= {"ca.pem", "ca.key", "bank.pem", "bank.key", "partner.key"}
    assert cli.main(["certs", "init", "--dir", str(tmp_path / "c"), "--parties", "bank"]) == 2


@pytest.mark.parametrize("parties", [("bank", "partner"), PARTIES3])
def test_simulate_runs_parties_as_processes_over_grpc(tmp_path: Path, parties: tuple[str, ...]) -> None:
    spec = write_job(tmp_path, parties)
    res = run_cli("simulate", str(spec), "--workdir", str(tmp_path / "w"))
    assert res.returncode == 0, res.stderr
    dfs = [pd.read_csv(tmp_path / f"{p}.csv") for p in parties]
    for p in parties:
        doc = json.loads((tmp_path / "w" / p / "jobs" / "job-1" / "steps" / "totals.json").read_text())
        assert doc["outputs"]["total"] == [int(sum(df["balance"].sum() for df in dfs))]
        assert doc["outputs"]["row_count"] == sum(len(df) for df in dfs) and doc["bytes_sent"] > 0
    res = run_cli("ledger", "show", "--workdir", str(tmp_path / "w"), "--as", parties[-1], "--json")
    rows = json.loads(res.stdout)
    assert {(r["step"], r["discloser"]) for r in rows if r["recipient"] == parties[-1]} == {
        (s, d) for s in ("totals", "scores") for d in (*parties[:-1], "all")
    }


@pytest.mark.slow
def test_simulate_runs_the_horizontal_example_as_five_processes(tmp_path: Path) -> None:
    """examples/horizontal: four data parties and an aggregator, each a `misuan run` over gRPC + mTLS."""
    spec = Path(__file__).resolve().parents[1] / "examples" / "horizontal" / "job.toml"
    res = run_cli("simulate", str(spec), "--workdir", str(tmp_path / "w"))
    assert res.returncode == 0, res.stderr[-3000:]
    assert "completed for lender-a, lender-b, lender-c, lender-d, hub in separate processes" in res.stdout
    models = {p: (tmp_path / "w" / p / "jobs" / "example-horizontal" / "artefacts" / "scorecard" / "scorecard.csv").read_text()
              for p in ("lender-a", "lender-d", "hub")}
    assert len(set(models.values())) == 1 and "points" in models["hub"]
    rows = json.loads(run_cli("ledger", "show", "--workdir", str(tmp_path / "w"), "--as", "hub", "--json").stdout)
    assert {r["discloser"] for r in rows if r["recipient"] == "hub"} == {"lender-a", "lender-b", "lender-c", "lender-d", "all"}


def test_simulate_refuses_a_column_a_step_lacks_before_starting_any_party(tmp_path: Path) -> None:
    spec = write_job(tmp_path)
    df = pd.read_csv(tmp_path / "partner.csv", dtype=str)
    df.drop(columns=["balance"]).to_csv(tmp_path / "partner.csv", index=False)
    res = run_cli("simulate", str(spec), "--workdir", str(tmp_path / "w"))
    assert res.returncode == 3, res.stderr
    assert "partner's dataset partner.csv has no column 'balance' to add (step[1] 'totals'.params.columns)" in res.stderr
    assert not (tmp_path / "w").exists()


WOE_AFTER_PSI = """
[[step]]
kind = "psi"

[[step]]
kind = "woe"
params = { key_bits = 1024, min_key_bits = 1024 }
"""


def test_simulate_reports_the_failing_partys_code(tmp_path: Path) -> None:
    """A party that fails inside a step gives the job its exit code, not the peer's disconnection (4)."""
    spec = write_job(tmp_path, steps=WOE_AFTER_PSI)
    bank = pd.read_csv(tmp_path / "bank.csv", dtype={"customer_id": str})
    partner = pd.read_csv(tmp_path / "partner.csv", dtype={"customer_id": str})
    # both files pass every check, but the customers they share are all goods: only PSI can tell
    partner[bank["default_90d"] == 0].to_csv(tmp_path / "partner.csv", index=False)
    res = run_cli("simulate", str(spec), "--workdir", str(tmp_path / "w"))
    assert res.returncode == 3, res.stderr
    assert "the labels contain only one class" in res.stderr
    assert "exit codes {'bank': 3, 'partner': 4}" in res.stderr
    state = json.loads((tmp_path / "w" / "bank" / "jobs" / "job-1" / "state.json").read_text())
    assert state["status"] == "failed" and state["steps"]["psi"]["status"] == "done", state


PARTNER_DIES = textwrap.dedent(
    """
    import os, sys, time
    from misuan.node.runner import HELLO_STEP, VERSIONS_STEP, JobHello, job_versions
    from misuan.node.spec import load_spec
    from misuan.node.transport import grpc_opener
    from misuan.crypto.certs import party_tls_files
    spec = load_spec(sys.argv[1])
    chan = grpc_opener(spec, "partner", party_tls_files(sys.argv[2], "partner"))(None)
    chan.send("bank", VERSIONS_STEP, job_versions(spec))
    chan.send("bank", HELLO_STEP, JobHello(spec.shared_hash(), []))
    chan.recv("bank", VERSIONS_STEP)
    chan.recv("bank", HELLO_STEP)
    from misuan.node.anchoring import HELD_ANCHOR_STEP, HeldAnchor
    chan.send("bank", HELD_ANCHOR_STEP, HeldAnchor(0, "0" * 64, ""))  # no anchor of the bank's ledger yet
    chan.recv("bank", HELD_ANCHOR_STEP)
    time.sleep(0.5)  # let the bank's hello call return and its first step start
    os._exit(1)  # then die abruptly, without a goodbye, while the bank waits for our share
    """
)


def test_peer_dying_mid_job_gives_clear_error_and_no_output(tmp_path: Path) -> None:
    from misuan.crypto.certs import create_ca, issue_party_cert

    ports = free_ports(2)
    spec = write_job(tmp_path, ports=ports)
    create_ca(tmp_path / "c")
    for p in ("bank", "partner"):
        issue_party_cert(tmp_path / "c", p)
    root = Path(__file__).resolve().parents[1]
    partner = subprocess.Popen([sys.executable, "-c", PARTNER_DIES, str(spec), str(tmp_path / "c")], cwd=root)
    res = run_cli("run", str(spec), "--as", "bank", "--workdir", str(tmp_path / "w"), "--tls-dir", str(tmp_path / "c"))
    partner.wait(30)
    assert res.returncode == 4, res.stderr
    # whether the bank notices while sending or while receiving, the message names the peer
    assert re.search(r"misuan: error: (partner (has )?disconnected|lost the connection to partner)", res.stderr), res.stderr
    assert "hint: a peer disconnected in the middle of a job: restart the job on every party" in res.stderr
    jd = tmp_path / "w" / "bank" / "jobs" / "job-1"
    assert sorted(p.name for p in jd.rglob("*") if p.is_file()) == ["state.json"]
    state = json.loads((jd / "state.json").read_text())
    assert state["status"] == "failed" and state["steps"]["totals"]["status"] == "failed", (state, res.stderr)


def test_params_lists_every_step_kind_with_its_declared_parameters(capsys: pytest.CaptureFixture[str]) -> None:
    from misuan.node.steps import STEPS
    from misuan.params import param_docs

    assert cli.main(["params"]) == 0
    out = capsys.readouterr().out
    for kind in STEPS.values():
        assert f"{kind.kind}: {kind.summary}" in out
        for row in param_docs(kind.params):
            assert re.search(rf"^  {re.escape(row.name)} +", out, re.M), (kind.kind, row.name)
    assert cli.main(["params", "nosuch"]) == 2
    assert "no step kind 'nosuch'; the step kinds are" in capsys.readouterr().err


def test_params_of_one_kind_as_text_and_markdown(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import dataclasses

    from misuan.net.protocol import ProtocolInfo
    from misuan.node.steps import STEPS, StepContext, StepKind, StepResult
    from misuan.params import check_params, param

    @dataclasses.dataclass(frozen=True)
    class ToyParams:
        n_bins: int = param(10, "number of bins", ge=2, le=50)
        scheme: str = param("ou", "encryption scheme")

        def __post_init__(self) -> None:
            check_params(self, "toy")

    def never_run(ctx: StepContext) -> StepResult:
        raise AssertionError("listing parameters runs no step")

    toy = StepKind("toy", never_run, params=(ToyParams,), protocols=(ProtocolInfo("toy", 3, ""),), summary="a toy step")
    monkeypatch.setitem(STEPS, "toy", toy)
    assert cli.main(["params", "toy"]) == 0
    assert capsys.readouterr().out == textwrap.dedent("""\
        toy: a toy step
          protocols: toy v3
          param   type     default  range         meaning
          n_bins  integer  10       from 2 to 50  number of bins
          scheme  text     "ou"     -             encryption scheme
        """)
    assert cli.main(["params", "toy", "--markdown"]) == 0
    assert capsys.readouterr().out == textwrap.dedent("""\
        ## `toy`

        A toy step.
        Protocols: toy v3.

        | param | type | default | range | meaning |
        |---|---|---|---|---|
        | `n_bins` | integer | `10` | from 2 to 50 | number of bins |
        | `scheme` | text | `"ou"` |  | encryption scheme |
        """)


def test_docs_params_md_is_generated_from_the_declarations(capsys: pytest.CaptureFixture[str]) -> None:
    """docs/params.md is `misuan params --markdown`; after changing a step's params, regenerate it so."""
    assert cli.main(["params", "--markdown"]) == 0
    generated = capsys.readouterr().out
    docs = Path(__file__).resolve().parents[1] / "docs" / "params.md"
    assert docs.read_text(encoding="utf-8") == generated, "regenerate: misuan params --markdown > docs/params.md"
