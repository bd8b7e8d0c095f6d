"""The validation report: its document from predictions (calibration, confusion, challengers) and its
page, escaped and rendered in headless Chromium."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from misuan.report.validation import calibration_table, confusion_at, render_validation, validation_document


def _doc() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    pd_ = rng.beta(2, 6, size=2000)
    y = (rng.random(2000) < pd_).astype(int)
    fairness = {"policy": "US", "approve_below": 0.25, "approval_rate": 0.6, "rows": 2000,
                "model_feature_warnings": ["partner's model feature 'SEX' <b>is</b> protected"],
                "audits": [{"attribute": "SEX", "protected_as": "sex", "approval_ratio": 0.7, "equal_opportunity_gap": 0.12,
                            "calibration_gap": 0.01, "findings": ["SEX: ratio 0.70"],
                            "groups": [{"group": "male", "rows": 900, "approval_rate": 0.5, "approval_rate_repaid": 0.55,
                                        "mean_pd": 0.25, "default_rate": 0.26},
                                       {"group": "female", "rows": 1100, "approval_rate": 0.7, "approval_rate_repaid": 0.67,
                                        "mean_pd": 0.2, "default_rate": 0.21}]}],
                "findings": ["SEX: ratio 0.70"]}
    return validation_document(
        model={"name": "joint <model>", "job_id": "j1", "part_hashes": {"bank": "ab" * 32}, "features": {"bank": ["X"]}},
        intended_use=["scoring"], out_of_scope=["other products"],
        lineage=[{"party": "bank", "role": "label_party", "file": "bank.csv", "sha256": "cd" * 32, "rows": 2000}],
        steps=[{"name": "secureboost", "kind": "secureboost", "params": "{}"}], y_true=y.tolist(),
        scores={"joint": pd_.tolist(), "bank_only": (pd_ + rng.normal(0, 0.1, 2000)).tolist()},
        model_names={"joint": "joint", "bank_only": "bank only"}, cutoff=0.25, fairness=fairness,
        ledgers=[{"party": "bank", "entries": 10, "sent": 4, "received": 6, "verified": True}], caveats=["one split"],
    )


def test_calibration_and_confusion_are_computed_from_the_predictions() -> None:
    y = np.array([0, 0, 1, 1, 0, 1])
    p = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    cal = calibration_table(y, p, n_bands=3)
    assert [r["rows"] for r in cal] == [2, 2, 2] and cal[0]["default_rate"] == 0.0 and cal[2]["mean_pd"] == pytest.approx(0.55)
    assert confusion_at(y, p, 0.35) == {"approved_repaid": 2, "approved_defaulted": 1, "declined_repaid": 1,
                                        "declined_defaulted": 2}
    doc = _doc()
    perf = doc["evaluation"]["performance"]
    assert perf["joint"]["gini"] == pytest.approx(2 * perf["joint"]["auc"] - 1) and perf["joint"]["auc"] > perf["bank_only"]["auc"]


def test_the_page_escapes_every_text() -> None:
    html = render_validation(_doc())
    assert "joint &lt;model&gt;" in html and "<b>is</b>" not in html and "&lt;b&gt;is&lt;/b&gt;" in html
    assert "SEX: ratio 0.70" in html and "No later period has been monitored yet" in html


@pytest.mark.skipif(
    not any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")),
    reason="no headless Chromium installed (apt-get install chromium)",
)
def test_headless_chromium_renders_the_validation_report(tmp_path: Path) -> None:
    script = Path(__file__).resolve().parents[1] / "scripts" / "screenshot_report.py"
    spec = importlib.util.spec_from_file_location("screenshot_report", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    html = tmp_path / "v.html"
    html.write_text(render_validation(_doc()), encoding="utf-8")
    png = module.screenshot(html, tmp_path / "v.png", width=1200, height=2400)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 60_000  # tables and text, not a blank page
