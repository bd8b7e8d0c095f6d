"""docs/deployment.md, run as written: two institutions, two PKIs, two node processes, consent on both sides.

The ``sh`` blocks run line by line (``misuan`` is this checkout's CLI; ``misuan node start`` runs in
the background), the blocks marked ``<!-- file: PATH -->`` are written to PATH, with the page's
ports swapped for free ones. Then the same job is refused once, to see the reason reach the bank.
"""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from misuan.audit.ledger import Ledger
from misuan.node.consent import CONSENT_STEP, preview_job
from misuan.node.spec import load_spec
from tests.jobfiles import free_ports, write_dataset

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "deployment.md"
JOB = "totals-2026-11"


def _blocks(text: str) -> list[tuple[str, str, str | None]]:
    """(language, body, file) of every fenced block, in order."""
    out = []
    pattern = re.compile(r"(?:<!-- file: (?P<file>\S+) -->\n)?```(?P<lang>\w+)\n(?P<body>.*?)```", re.S)
    for m in pattern.finditer(text):
        out.append((m["lang"], m["body"], m["file"]))
    return out


def _wait_for(what: str, ok: Callable[[], bool], timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while not ok():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _misuan(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([sys.executable, "-m", "misuan.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    if check:
        assert res.returncode == 0, f"misuan {' '.join(args)} -> {res.returncode}\n{res.stdout}\n{res.stderr}"
    return res


def _log_has(path: Path, text: str) -> bool:
    return path.is_file() and text in path.read_text(encoding="utf-8")


def _run_line(line: str, root: Path, nodes: dict[str, subprocess.Popen[str]]) -> None:
    words = shlex.split(line)
    if words[0] != "misuan":
        subprocess.run(line, shell=True, cwd=root, check=True)
        return
    args = words[1:]
    if args[:2] == ["node", "start"]:
        party = Path(args[args.index("--config") + 1]).parent.name
        nodes[party] = subprocess.Popen(
            [sys.executable, "-m", "misuan.cli", *args, "--poll", "0.2"], cwd=root, stderr=subprocess.PIPE, text=True,
        )
        _wait_for(f"{party}'s node", lambda: (root / party / "data-node" / "node.status.json").is_file())
        return
    if args[:2] == ["node", "approve"] and "partner" in args[args.index("--config") + 1]:
        # the bank's node started the job and says why it waits, instead of timing out
        _wait_for("the bank to wait for the partner", lambda: _log_has(root / "bank" / "data-node" / "node.log.jsonl", "waiting for partner's approval"))
    if args[:2] in (["node", "show"], ["node", "approve"], ["node", "refuse"]):
        # the node writes the preview at its next poll after the submission
        _wait_for(f"misuan {' '.join(args)}", lambda: _misuan(args, root, check=False).returncode == 0)
        return
    _misuan(args, root)


def _state(root: Path, party: str, job: str) -> str | None:
    path = root / party / "data-node" / "jobs" / job / "state.json"
    return json.loads(path.read_text())["status"] if path.is_file() else None


@pytest.mark.slow
def test_the_two_pki_deployment_page_runs_end_to_end(tmp_path: Path) -> None:
    text = DOC.read_text(encoding="utf-8")
    ports = free_ports(2)
    text = text.replace("127.0.0.1:50051", f"127.0.0.1:{ports[0]}").replace("127.0.0.1:50052", f"127.0.0.1:{ports[1]}")
    for party in ("bank", "partner"):
        (tmp_path / party / "data").mkdir(parents=True)
        write_dataset(tmp_path / party / "data" / f"{party}.csv", party, seed=len(party), label=party == "bank")
    nodes: dict[str, subprocess.Popen[str]] = {}
    try:
        for lang, body, file in _blocks(text):
            if file is not None:
                (tmp_path / file).parent.mkdir(parents=True, exist_ok=True)
                (tmp_path / file).write_text(body, encoding="utf-8")
            elif lang == "sh":
                for line in body.splitlines():
                    if line.strip() and not line.startswith("#"):
                        _run_line(line, tmp_path, nodes)
        assert set(nodes) == {"bank", "partner"}
        _wait_for("the job on both nodes", lambda: all(_state(tmp_path, p, JOB) == "completed" for p in nodes))
        assert (tmp_path / "partner" / "preview.html").read_text().count("<tr>") > 5

        # what each operator was shown is what the run recorded; each decision is in its ledger
        spec = load_spec(tmp_path / "bank" / "job.toml")
        for party in nodes:
            with Ledger(tmp_path / party / "data-node" / "ledger.sqlite") as led:
                rows = led.entries(JOB)
            recorded = {(e.step, e.what, e.form, e.discloser, e.recipient) for e in rows if e.step != CONSENT_STEP}
            assert recorded == {d.key for d in preview_job(spec, party).disclosures}
            consent = [e for e in rows if e.step == CONSENT_STEP]
            assert len(consent) == 1 and consent[0].detail["decision"] == "approved"

        # the same job under another id, refused by the partner: the bank's job ends with the reason
        for party in nodes:
            job2 = (tmp_path / party / "job.toml").read_text().replace(JOB, "totals-2026-12")
            (tmp_path / party / "job2.toml").write_text(job2)
            _misuan(["submit", f"{party}/job2.toml", "--config", f"{party}/node.toml"], tmp_path)
        _run_line('misuan node approve totals-2026-12 --config bank/node.toml', tmp_path, nodes)
        _run_line('misuan node refuse totals-2026-12 --config partner/node.toml --reason "not in our data-sharing agreement"', tmp_path, nodes)
        failed = tmp_path / "bank" / "data-node" / "inbox" / "failed"
        _wait_for("the bank to hear the refusal", lambda: any(failed.glob("*totals-2026-12*.error.txt")))
        reason = next(failed.glob("*totals-2026-12*.error.txt")).read_text()
        assert "JobRefusedError" in reason and "not in our data-sharing agreement" in reason
    finally:
        for proc in nodes.values():
            proc.send_signal(signal.SIGTERM)
        errs = {p: proc.communicate(timeout=30)[1] for p, proc in nodes.items()}
    for p, proc in nodes.items():
        assert proc.returncode == 0, errs[p]
