"""``misuan demo --serve``'s serving: the demo's joint model online scores every hold-out customer
exactly as the demo's batch evaluation did."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from misuan.demo_serve import start_demo_serving
from misuan.node.runner import read_outputs

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_served_demo_model_scores_every_hold_out_row_as_the_batch_evaluation(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-m", "misuan.cli", "demo", "--workdir", str(tmp_path), "--trees", "3", "--depth", "3"],
                         capture_output=True, text=True, timeout=400, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    job = sorted((tmp_path / "nodes" / "bank" / "jobs").glob("demo-*"))[-1].name
    ev = read_outputs(tmp_path / "nodes" / "bank", job)["evaluate"]
    serving = start_demo_serving(tmp_path)
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
