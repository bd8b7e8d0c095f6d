"""``misuan lending copy``: files and stdin, text and JSON, terms, exit codes for CI."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from misuan import cli
from misuan.lending.copy_check import VIOLATIONS_EXIT_CODE

REPO = Path(__file__).resolve().parents[2]
BAD = "必下款！日利率0.02%，理性借贷。\n第二行：大学生专享。\n"
CLEAN = "年化利率 7.2%起，日利率0.02%。理性借贷，量力而行。\n"


def _write(tmp_path: Path, name: str, text: str) -> str:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return str(p)


def test_text_output_names_file_line_column_rule_and_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, "ad.txt", BAD)
    assert cli.main(["lending", "copy", path]) == VIOLATIONS_EXIT_CODE == 10
    out = capsys.readouterr().out
    assert f"{path}:1:1: error guaranteed-approval:" in out
    assert f"{path}:1:5: error rate-without-annualised:" in out
    assert f"{path}:2:5: error student-targeting:" in out
    assert "text: '大学生' (characters 23-26)" in out
    assert "source: PBoC Announcement [2021] No. 3" in out
    assert out.rstrip().endswith("3 finding(s) (3 error(s), 0 warning(s)); fails (--fail-on warning)")


def test_clean_copy_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["lending", "copy", _write(tmp_path, "ok.txt", CLEAN)]) == 0
    assert "0 finding(s)" in capsys.readouterr().out


def test_json_output_for_several_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = _write(tmp_path, "a.txt", BAD), _write(tmp_path, "b.txt", CLEAN)
    assert cli.main(["lending", "copy", a, b, "--format", "json"]) == VIOLATIONS_EXIT_CODE
    doc = json.loads(capsys.readouterr().out)
    assert doc["violations"] == 3 and doc["fail_on"] == "warning"
    assert doc["rules"].endswith("copy_rules.toml")
    fa, fb = doc["files"]
    assert (fa["path"], fa["language"], fb["findings"]) == (a, "zh", [])
    first = fa["findings"][0]
    assert {k: first[k] for k in ("rule", "severity", "start", "end", "text", "line", "column")} == {
        "rule": "guaranteed-approval", "severity": "error", "start": 0, "end": 3, "text": "必下款", "line": 1, "column": 1,
    }
    assert first["sources"] and first["explanation"] and first["title"]
    assert BAD[first["start"]:first["end"]] == first["text"]


def test_terms_file_makes_a_zero_interest_claim_a_violation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ad = _write(tmp_path, "ad.txt", "12期免息，轻松购新机。理性消费。")
    assert cli.main(["lending", "copy", ad]) == 0
    terms = _write(tmp_path, "terms.toml", 'name = "phone plan"\ninterest_rate = 0.0\n[fees]\ninstalment_fee = 0.006\n')
    assert cli.main(["lending", "copy", ad, "--terms", terms]) == VIOLATIONS_EXIT_CODE
    assert "zero-interest-with-fees" in capsys.readouterr().out


def test_fail_on_error_and_ignore(tmp_path: Path) -> None:
    ad = _write(tmp_path, "ad.txt", "Personal loans from 7.99% APR.")  # only a missing warning
    assert cli.main(["lending", "copy", ad]) == VIOLATIONS_EXIT_CODE
    assert cli.main(["lending", "copy", ad, "--fail-on", "error"]) == 0
    assert cli.main(["lending", "copy", ad, "--ignore", "missing-risk-warning"]) == 0


def test_stdin_through_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO("\ufeffGuaranteed approval! Borrow responsibly.".encode())))
    assert cli.main(["lending", "copy", "-", "--format", "json"]) == VIOLATIONS_EXIT_CODE
    (f,) = json.loads(capsys.readouterr().out)["files"][0]["findings"]
    assert (f["rule"], f["start"], f["text"]) == ("guaranteed-approval", 0, "Guaranteed approval")


def test_stdin_in_a_real_process() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "misuan.cli", "lending", "copy", "-"], input=BAD.encode(), capture_output=True,
        cwd=REPO, timeout=60,
    )
    assert run.returncode == VIOLATIONS_EXIT_CODE, run.stderr
    assert "-:1:1: error guaranteed-approval" in run.stdout.decode()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["missing.txt"], 2, "missing.txt does not exist"),
        (["{ad}", "--terms", "nope.toml"], 2, "terms file nope.toml does not exist"),
        (["{ad}", "--terms", "{badterms}"], 2, "unknown key(s) ['fee']"),
        (["{ad}", "--rules", "{badrules}"], 2, "is not valid TOML"),
        (["{ad}", "--ignore", "no-such-rule"], 2, "cannot ignore unknown copy rule(s) ['no-such-rule']"),
        (["{latin1}"], 3, "is not UTF-8 text"),
    ],
)
def test_bad_input_gives_one_line_and_a_documented_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], code: int, message: str
) -> None:
    files = {
        "ad": _write(tmp_path, "ad.txt", CLEAN),
        "badterms": _write(tmp_path, "t.toml", "fee = 1\n"),
        "badrules": _write(tmp_path, "r.toml", "version = \n"),
    }
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("prêt garanti à 100 %".encode("latin-1"))
    files["latin1"] = str(latin1)
    argv = ["lending", "copy", *(a.format(**files) for a in args)]
    assert cli.main(argv) == code
    err = capsys.readouterr().err
    assert err.startswith("misuan: error: ") and message in err and err.count("\n") == 2  # message + hint


def test_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["lending", "copy", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "10 when there is one (a violation)" in out and "2 for bad arguments" in out
