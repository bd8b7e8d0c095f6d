"""``misuan demo`` end to end: two processes over gRPC + mTLS, the summary and the report."""

from __future__ import annotations

import hashlib
import html.parser
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest


class _Sections(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.h2: list[str] = []
        self.svgs = 0
        self._in_h2 = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_h2 = tag == "h2"
        self.svgs += tag == "svg"

    def handle_data(self, data: str) -> None:
        if self._in_h2 and data.strip():
            self.h2.append(data.strip())
            self._in_h2 = False


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    res = subprocess.run(
        [sys.executable, "-m", "misuan.cli", "demo", "--workdir", str(tmp_path), "--trees", "3", "--depth", "3"],
        capture_output=True, text=True, timeout=400, env=env,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout
    assert "21000 shared customers" in out
    aucs = {line.split("AUC")[0].strip(): float(line.split("AUC")[1].split()[0]) for line in out.splitlines() if " AUC " in line and " KS " in line}
    joint = next(v for k, v in aucs.items() if k.startswith("SecureBoost"))
    bank_only = next(v for k, v in aucs.items() if "bank features only" in k)
    pooled = next(v for k, v in aucs.items() if "pooled" in k)
    assert joint > bank_only and abs(joint - pooled) < 0.005
    scorecard = next(v for k, v in aucs.items() if k.startswith("Scorecard"))
    assert scorecard > 0.7  # the federated scorecard on the same hold-out
    # the credit decision: the policy on the joint PDs, the product within the Chinese caps
    assert "Credit decisions on the joint PDs:" in out and "CN caps pass (cn.financing_cost.24" in out
    parser = _Sections()
    parser.feed((tmp_path / "report.html").read_text(encoding="utf-8"))
    text = " ".join(parser.h2).lower()
    for section in ("job", "shared customers", "woe", "model", "roc", "score", "importance", "ledger", "lending"):
        assert section in text, f"report lacks a {section!r} section: {parser.h2}"
    assert parser.svgs >= 5
    report = (tmp_path / "report.html").read_text(encoding="utf-8")
    held_out = report[report.index("<h3>Held-out customers</h3>"):]
    held_out = held_out[: held_out.index("</table>")]
    assert "bank:" in held_out  # the reasons are shown
    assert not any(f"partner:{a}" in held_out for a in ("SEX", "MARRIAGE", "AGE"))  # never a protected attribute
    # the job spec the demo ran is the one two real nodes would run
    assert (tmp_path / "demo-job.toml").read_text().count("[[step]]") == 6
    # the validation report: model card, pinned model parts, the fairness audit by the partner's attributes
    assert "Fairness (CN policy" in out and "Validation report:" in out
    doc = json.loads((tmp_path / "validation.json").read_text())
    assert set(doc["model"]["part_hashes"]) == {"bank", "partner"}
    card_part = tmp_path / "nodes" / "partner" / "jobs" / doc["model"]["job_id"] / "artefacts" / "scorecard" / "scorecard.json"
    assert doc["model"]["challenger_part_hashes"]["partner: scorecard (vertical LR)"] == \
        hashlib.sha256(card_part.read_bytes()).hexdigest()  # the scorecard's parts are pinned too
    assert {a["attribute"] for a in doc["fairness"]["audits"]} == {"SEX", "MARRIAGE", "AGE"}
    assert len(doc["fairness"]["peer_model_feature_warnings"]) == 3  # the partner's SEX, MARRIAGE, AGE are features
    _the_served_model_scores_every_hold_out_row_as_the_batch_evaluation(tmp_path)
    page = _Sections()
    page.feed((tmp_path / "validation.html").read_text(encoding="utf-8"))
    assert [h.lower() for h in page.h2] == ["model details", "intended use", "performance and challengers",
                                           "analyses by protected group", "data lineage and parameters", "stability",
                                           "what each party disclosed", "caveats and limitations"]


def test_demo_reports_a_bad_workdir_clearly(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    res = subprocess.run([sys.executable, "-m", "misuan.cli", "demo", "--workdir", str(blocker / "sub")],
                         capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert "misuan: error:" in res.stderr


def test_a_decline_notice_never_gives_a_protected_characteristic_as_a_reason() -> None:
    from misuan.demo import _permitted

    codes = ["partner:SEX", "bank:PAY_0", "partner:MARRIAGE", "partner:AGE", "partner:PAY_AMT1", "bank:LIMIT_BAL"]
    assert _permitted(codes) == ["bank:PAY_0", "partner:PAY_AMT1", "bank:LIMIT_BAL"]


def _the_served_model_scores_every_hold_out_row_as_the_batch_evaluation(tmp_path: Path) -> None:
    """``misuan demo --serve``'s serving (both nodes over gRPC + mTLS, the HTTP API) on the demo just run:
    every hold-out customer's PD equals the demo's batch evaluation, exactly."""
    from misuan.demo_serve import start_demo_serving
    from misuan.node.runner import read_outputs

    job = sorted((tmp_path / "nodes" / "bank" / "jobs").glob("demo-*"))[-1].name
    ev = read_outputs(tmp_path / "nodes" / "bank", job)["evaluate"]
    # a deadline for equality, not speed: one batch of every hold-out row, on a machine CI may load
    serving = start_demo_serving(tmp_path, deadline_ms=5000)
    try:
        results = serving.bank.decide([{"id": i} for i in ev["test_ids"]], disclose=False)
        assert all(r["partner_answered"] for r in results)
        assert np.array_equal(np.array([r["pd"] for r in results]), np.array(ev["scores"]))  # exact, every row
        req = urllib.request.Request(f"{serving.server.url}/v1/decisions", data=json.dumps({"id": ev["test_ids"][0]}).encode(),
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            body = json.loads(r.read())
        assert body["pd"] == ev["scores"][0] and body["decision"] in ("approve", "decline")
    finally:
        serving.close()
    # the federated scorecard served the same way: every hold-out PD within 1e-9 of its batch joint scoring
    card = read_outputs(tmp_path / "nodes" / "bank", job)["scorecard"]
    serving = start_demo_serving(tmp_path, model="scorecard", deadline_ms=5000)
    try:
        results = serving.bank.decide([{"id": i} for i in card["test_ids"]], disclose=False)
        assert all(r["partner_answered"] for r in results)
        assert np.max(np.abs(np.array([r["pd"] for r in results]) - np.array(card["pd"]))) <= 1e-9
        given = {x["code"] for r in results for x in r["reasons"]}
        assert given and not given & {"FEATURE_SEX", "FEATURE_MARRIAGE", "FEATURE_AGE"}  # protected: never given
    finally:
        serving.close()
