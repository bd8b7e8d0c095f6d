"""``misuan demo --horizontal``: five lenders and an aggregator as processes, the summary, ledgers and report."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from misuan.audit.ledger import Ledger
from misuan.demo_horizontal import LENDERS, HorizontalDemoConfig, split_lenders
from misuan.report.horizontal_page import render_horizontal_page

ROOT = Path(__file__).resolve().parents[1]


def test_the_lenders_differ_in_size_and_default_rate() -> None:
    tables = split_lenders(HorizontalDemoConfig(Path("unused")))
    sizes = [len(t) for t in tables.values()]
    rates = [t["default"].mean() for t in tables.values()]
    assert sum(sizes) == 30_000 and sizes == sorted(sizes, reverse=True)
    assert max(rates) - min(rates) > 0.08  # an online lender's book is riskier than a city bank's
    ids = [set(t["ID"]) for t in tables.values()]
    assert all(a.isdisjoint(b) for i, a in enumerate(ids) for b in ids[i + 1 :])  # different customers


@pytest.mark.slow
def test_horizontal_demo_runs_end_to_end(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run(
        [sys.executable, "-m", "misuan.cli", "demo", "--horizontal", "--workdir", str(tmp_path), "--trees", "3", "--depth", "3"],
        capture_output=True, text=True, timeout=400, env=env,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "5 lenders and an aggregator, separate processes, gRPC + mutual TLS" in res.stdout
    root = tmp_path / "horizontal"
    summary = json.loads((root / "summary.json").read_text())
    assert [r["name"] for r in summary["lenders"]] == [name for name, *_ in LENDERS]
    assert summary["contributors"] == [name for name, *_ in LENDERS]
    for r in summary["lenders"]:
        assert 0.6 < r["auc_alone"] < 0.9 and 0.6 < r["auc_boosting"] < 0.9 and 0.6 < r["auc_scorecard"] < 0.9
    assert summary["iv"][0]["feature"] == "PAY_0"  # last month's repayment status carries the most information
    assert all(w < 0 for w in summary["scorecard_coef"].values())  # higher WOE, fewer defaults
    assert all(r["lowest_score"] < r["score_median"] and r["lowest_reasons"] for r in summary["lenders"])
    assert {row["feature"] for row in summary["scorecard_points"]} == set(summary["scorecard_coef"])
    for party in [*(name for name, *_ in LENDERS), "aggregator"]:
        with Ledger(root / "nodes" / party / "ledger.sqlite") as book:
            assert book.verify() > 0
            steps = {e.step.split("/")[0] for e in book.entries()}
            assert steps == {"pooled_woe", "scorecard", "boosting"}
    page = (root / "report.html").read_text()
    assert "Five lenders, one model" in page and page.count("<svg") >= 1 and "lender-e" in page


@pytest.mark.skipif(
    not any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")),
    reason="no headless Chromium installed (apt-get install chromium)",
)
def test_headless_chromium_renders_the_horizontal_report(tmp_path: Path) -> None:
    lender = {"rows_train": 7000, "rows_holdout": 3000, "bad_rate": 0.2, "auc_alone": 0.74, "auc_scorecard": 0.75,
              "auc_boosting": 0.76, "auc_pooled_reference": 0.77, "bytes_sent": 1 << 20, "bytes_received": 3 << 20,
              "ledger_entries": 400, "ledger_head": "ab" * 32, "seconds": 9.0, "lr_iterations": 6, "gbdt_rounds": 33,
              "score_median": 610.0, "lowest_score": 480.0, "lowest_reasons": ["PAY_0", "LIMIT_BAL"]}
    summary = {
        "generated_at": "fixed", "wall_s": 15.0, "transport": "processes", "aggregator": "aggregator",
        "params": {"n_estimators": 10, "max_depth": 4, "learning_rate": 0.3, "woe_bins": 10, "threshold": 3},
        "lenders": [{**lender, "name": f"lender-{c}", "what": "a bank <&>"} for c in "abcde"],
        "iv": [{"feature": "PAY_0", "iv": 0.9}, {"feature": "AGE", "iv": 0.03}],
        "scorecard_coef": {"PAY_0": -0.8}, "scorecard_intercept": -1.3, "scorecard_min_iv": 0.1,
        "scorecard_points": [{"feature": "PAY_0", "bin": "(-inf, 0]", "points": 80.5}, {"feature": "PAY_0", "bin": "missing", "points": 51.0}],
        "contributors": [f"lender-{c}" for c in "abcde"], "lr_iterations": 6, "gbdt_rounds": 53,
        "bytes_sent": 9 << 20, "ledger_entries": 2000, "ledger_head": "cd" * 32,
    }
    html = tmp_path / "h.html"
    html.write_text(render_horizontal_page(summary))
    assert "a bank &lt;&amp;&gt;" in html.read_text()  # escaped
    spec = importlib.util.spec_from_file_location("screenshot_report", ROOT / "scripts" / "screenshot_report.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    png = module.screenshot(html, tmp_path / "h.png", width=1200, height=1800).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 40_000
