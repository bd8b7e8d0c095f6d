"""``misuan lending rate|schedule|caps`` through the command line: output, JSON and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from misuan import cli
from misuan.errors import EXIT_CODES, ComplianceViolation

PBOC = ["--principal", "100000", "--upfront-fee", "1000", "--payment", "8833.30", "--term", "12", "--start", "2021-03-12"]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_exit_codes_are_documented() -> None:
    assert ComplianceViolation.exit_code == 10 and "violation" in EXIT_CODES[10]


def test_rate_reproduces_the_pboc_example(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "lending", "rate", *PBOC, "--rule", "pboc")
    assert code == 0
    assert "13.58% compound (IRR), 12.80% simple" in out
    code, out, _ = _run(capsys, "lending", "rate", *PBOC, "--json")
    doc = json.loads(out)
    assert code == 0 and doc["ok"] is True
    assert round(doc["pboc"]["simple"] * 100, 2) == 12.80 and round(doc["pboc"]["compound"] * 100, 2) == 13.58
    assert set(doc) == {"ok", "pboc", "regz", "mla", "eu"}


def test_disclosed_apr_outside_tolerance_exits_10(capsys: pytest.CaptureFixture[str]) -> None:
    loan = ["--principal", "5000", "--payment", "230", "--term", "24", "--start", "1978-01-10", "--rule", "regz"]
    code, out, _ = _run(capsys, "lending", "rate", *loan, "--disclosed-apr", "9.75%")
    assert code == 0 and "9.69%" in out and "accurate" in out
    code, out, _ = _run(capsys, "lending", "rate", *loan, "--disclosed-apr", "9.9%")
    assert code == 10 and "NOT accurate" in out and "1026.22(a)(2)" in out


def test_rate_of_dated_flows_from_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flows = [{"date": "1994-01-01", "amount": 1000, "kind": "advance"},
             {"date": "1995-01-01", "amount": 600, "kind": "payment"},
             {"date": "1996-01-01", "amount": 600, "kind": "payment"}]
    path = tmp_path / "flows.json"
    path.write_text(json.dumps({"flows": flows}), encoding="utf-8")
    code, out, _ = _run(capsys, "lending", "rate", "--flows", str(path), "--rule", "eu")
    assert code == 0 and "13.1%" in out  # Directive 98/7/EC Annex II, third example


def test_schedule_table_json_and_disclosure(capsys: pytest.CaptureFixture[str]) -> None:
    loan = ["--principal", "12000", "--annual-rate", "12%", "--term", "12", "--repayment", "equal-principal",
            "--start", "2026-01-31"]
    code, out, _ = _run(capsys, "lending", "schedule", *loan)
    assert code == 0 and "2026-02-28" in out and "1,000.00" in out
    code, out, _ = _run(capsys, "lending", "schedule", *loan, "--json")
    doc = json.loads(out)
    assert len(doc["rows"]) == 12 and doc["rows"][-1]["balance"] == 0
    code, out, _ = _run(capsys, "lending", "schedule", *PBOC, "--disclosure", "zh")
    assert code == 0 and out.splitlines()[1] == "年化利率（复利，IRR）：13.58%"
    code, out, _ = _run(capsys, "lending", "schedule", *PBOC, "--disclosure", "en", "--html")
    assert out.startswith('<section class="misuan-loan-disclosure" lang="en">')


def test_caps_pass_and_violation(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "lending", "caps", "--jurisdiction", "CN", "--lender", "consumer_finance",
                        "--rate", "18%", "--date", "2026-01-01")
    assert code == 0 and "PASS" in out and "cn.financing_cost.24" in out
    loan = ["--principal", "10000", "--annual-rate", "25%", "--term", "12", "--start", "2026-02-01"]
    code, out, _ = _run(capsys, "lending", "caps", "--jurisdiction", "CN", "--lender", "microloan", *loan, "--json")
    doc = json.loads(out)
    assert code == 10 and doc["ok"] is False
    failed = {c["rule_id"] for c in doc["checks"] if c["status"] == "fail"}
    assert failed == {"cn.financing_cost.24", "cn.microloan.24"}
    for c in doc["checks"]:
        assert {"rule_id", "status", "figure", "limit", "source", "effective"} <= set(c)


def test_caps_mla_from_loan_terms(capsys: pytest.CaptureFixture[str]) -> None:
    loan = ["--principal", "2000", "--annual-rate", "30%", "--term", "12", "--start", "2026-01-01",
            "--upfront-fee", "40", "--mla-charges", "60"]
    code, out, _ = _run(capsys, "lending", "caps", "--jurisdiction", "US", "--lender", "bank", *loan,
                        "--covered-borrower")
    assert code == 10 and "us.mla.mapr_36" in out and "FAIL" in out
    code, out, _ = _run(capsys, "lending", "caps", "--jurisdiction", "US", "--lender", "bank", *loan)
    assert code == 0 and "NOT CHECKED" in out


@pytest.mark.parametrize(("argv", "code", "message"), [
    (["rate", "--principal", "-5", "--annual-rate", "0.1", "--term", "12"], 3, "principal must be positive"),
    (["schedule", "--principal", "10000", "--annual-rate", "0.12", "--payment", "50"], 3, "never repays"),
    (["rate", "--principal", "1000", "--payment", "50", "--term", "12"], 3, "never repays"),
    (["caps", "--jurisdiction", "XX", "--lender", "bank", "--rate", "0.1"], 2, "unknown jurisdiction 'XX'"),
    (["caps", "--jurisdiction", "CN", "--lender", "pawnshop", "--rate", "0.1"], 2, "unknown lender type"),
    (["caps", "--lender", "bank", "--rate", "0.1"], 2, "say which rules"),
    (["schedule", "--principal", "1000", "--term", "12"], 2, "needs --annual-rate"),
    (["schedule", "--principal", "1000", "--annual-rate", "0.1", "--term", "12", "--unit", "lunar"], 2, "unit period"),
])
def test_bad_input_is_one_line_and_a_documented_code(capsys: pytest.CaptureFixture[str], argv: list[str], code: int,
                                                     message: str) -> None:
    got, out, err = _run(capsys, "lending", *argv)
    assert got == code and code in EXIT_CODES
    first = err.splitlines()[0]
    assert first.startswith("misuan: error: ") and message in first
    assert len(err.splitlines()) == 2  # the message and its hint


def _flows_file(tmp_path: Path, flows: list[tuple[str, float, str]]) -> str:
    path = tmp_path / "flows.json"
    path.write_text(json.dumps([{"date": d, "amount": a, "kind": k} for d, a, k in flows]), encoding="utf-8")
    return str(path)


def test_no_rate_or_several_rates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    several = _flows_file(tmp_path, [("2026-01-01", 100, "advance"), ("2026-02-01", 230, "payment"),
                                     ("2026-03-01", 120, "advance")])
    code, _, err = _run(capsys, "lending", "rate", "--flows", several, "--unit", "month", "--rule", "pboc")
    assert code == 3 and "2 rates per period balance these flows (-20.000000%, 50.000000%)" in err
    none = _flows_file(tmp_path, [("2026-01-01", 100, "advance"), ("2026-01-02", 1e14, "payment")])
    code, _, err = _run(capsys, "lending", "rate", "--flows", none, "--rule", "eu")
    assert code == 3 and "no rate between -99.9 % and 10^14 %" in err


def test_malformed_rule_file_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "caps.toml"
    path.write_text("[ruleset\n", encoding="utf-8")
    code, _, err = _run(capsys, "lending", "caps", "--rules", str(path), "--lender", "bank", "--rate", "0.1")
    assert code == 2 and "not valid TOML" in err.splitlines()[0]
    bad_json = tmp_path / "flows.json"
    bad_json.write_text("{", encoding="utf-8")
    code, _, err = _run(capsys, "lending", "rate", "--flows", str(bad_json))
    assert code == 3 and "not valid JSON" in err


@pytest.mark.parametrize("command", ["rate", "schedule", "caps"])
def test_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["lending", command, "--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0 and "usage: misuan lending" in out and "10 violation" in out
