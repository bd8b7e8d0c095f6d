from __future__ import annotations

import copy
import datetime as dt
import importlib.util
import os
import re
import shutil
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from misuan.datasets.taiwan import PARTNER_FEATURES
from misuan.errors import DataError
from misuan.lending.policy import REASONS, PolicyParams
from misuan.ml.metrics import ks_statistic, roc_auc
from misuan.ml.outputs import FeatureIv, WoeBin, importance_from_secureboost, iv_from_woe_result
from misuan.node.steps.registry import STEPS
from misuan.params import ParamError
from misuan.protocols.psi import disclosures as psi_disclosures
from misuan.protocols.secureboost import disclosures as sb_disclosures
from misuan.protocols.woe import disclosures as woe_disclosures
from misuan.report import Summary, iv_strength, render_report
from misuan.report.lending_section import LENDING_CSS, highlight
from misuan.report.lending_summary import LendingSetup, lending_summary
from misuan.report.render import _monotonic, render_html
from misuan.report.sample import sample_summary
from misuan.report.schema import CopyFinding

EVIL = '<script>alert("x")</script>'
EVIL_ATTR = '" onmouseover="alert(1)'
EVIL_IMG = "<img src=x onerror=alert(1)>"
SECTIONS = {"job", "psi", "iv", "models", "curves", "scores", "importance", "ledger", "params", "lending", "scorecard"}


class _Page(HTMLParser):
    """Collects tags, attributes, ids, text, and per-element text for the checks below."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.stack: list[str] = []
        self.svg_titles: list[str] = []
        self.table_rows: dict[str, list[list[str]]] = {}
        self._table: list[str] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._in_svg = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "svg":
            self._in_svg += 1
        if tag == "table":
            self._table.append(a.get("class") or "")
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._in_svg -= 1
        elif tag == "table" and self._table:
            self._table.pop()
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table:
            self.table_rows.setdefault(self._table[-1], []).append(self._row)
            self._row = None
        if self.stack:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None and not self._in_svg:
            self._cell.append(data)
        if self.stack and self.stack[-1] == "title" and self._in_svg:
            self.svg_titles.append(data)

    def ids(self) -> set[str]:
        return {value for _, a in self.tags if (value := a.get("id"))}

    def count(self, tag: str, css: str | None = None) -> int:
        return sum(1 for t, a in self.tags if t == tag and (css is None or css in (a.get("class") or "").split()))

    @property
    def all_text(self) -> str:
        return "".join(self.text)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


@pytest.fixture(scope="module")
def summary() -> dict[str, Any]:
    s = sample_summary(seed=1, n_holdout=3000)
    s["iv"][0]["feature"] = EVIL
    s["feature_importance"][0]["feature"] = EVIL
    s["job"]["parties"][1]["organisation"] = EVIL_ATTR
    s["ledgers"][0]["entries"][0]["what"] = EVIL_IMG
    s["secureboost"]["<b>bold</b>"] = EVIL
    s["job"]["machine"] = "tester's box & <co>"
    return s


@pytest.fixture(scope="module")
def page(summary: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> _Page:
    path = render_report(summary, tmp_path_factory.mktemp("report") / "r.html", generated_at="fixed")
    return _parse(path)


def test_every_section_and_plot_is_present(summary: dict[str, Any], page: _Page) -> None:
    assert SECTIONS <= page.ids()
    assert {"roc", "ks", "score-histogram", "scorecard-points"} <= page.ids()
    # ROC, KS, score histogram, feature importance, limits by PD band, the scorecard's points; one WOE
    # sparkline per feature
    assert page.count("svg", "chart") == 6
    assert page.count("svg", "spark") == len(summary["iv"])
    titles = set(page.svg_titles)
    assert {"ROC curves", "KS plot of the joint model", "Predicted PD by actual outcome",
            "Scorecard points by actual outcome"} <= titles
    # four ROC curves (joint, bank-only, pooled, scorecard) + two KS curves, and the KS gap marked
    assert page.count("polyline", "series") == 6
    assert page.count("line", "mark") == 1
    assert page.count("rect", "bar") > 20
    text = page.all_text
    for heading in ("Job summary", "Shared customers", "Feature strength (WOE / IV)", "Model comparison",
                    "ROC and KS curves", "Score distribution", "Feature importance", "Disclosure ledger",
                    "SecureBoost parameters", "Credit decisions and lending compliance", "For the risk officer",
                    "For the auditor", "The federated scorecard", "Score bands on the hold-out", "Held-out customers"):
        assert heading in text
    assert summary["job"]["job_id"] in text and "21,000" in text
    assert "held by the partner" in text  # the partner's shared rows of the scorecard, without its points


def test_text_from_the_summary_is_escaped(page: _Page) -> None:
    tags = {t for t, _ in page.tags}
    assert "script" not in tags and "img" not in tags and "b" not in tags and "co" not in tags
    assert not [a for _, a in page.tags if any(k.startswith("on") for k in a)]  # no event handlers
    text = page.all_text
    # the hostile strings come back as literal text
    assert EVIL in text and EVIL_IMG in text and EVIL_ATTR.strip() in text and "tester's box & <co>" in text
    assert "<b>bold</b>" in text


def test_page_is_self_contained(summary: dict[str, Any], tmp_path: Path) -> None:
    html = render_report(summary, tmp_path / "r.html").read_text(encoding="utf-8")
    page = _parse(tmp_path / "r.html")
    for tag in ("script", "link", "img", "iframe", "object", "embed"):
        assert page.count(tag) == 0, tag
    for _, attrs in page.tags:
        for key, value in attrs.items():
            if key == "href":
                assert value is not None and value.startswith("#")
            assert key != "src"
            if key == "xmlns":
                continue
            assert "http:" not in (value or "") and "https:" not in (value or "")
    assert "url(" not in html and "@import" not in html and "@font-face" not in html


def test_metrics_shown_are_computed_from_the_predictions(summary: dict[str, Any], page: _Page) -> None:
    ev = summary["evaluation"]
    y = np.array(ev["y_true"])
    auc = {k: roc_auc(y, np.array(v)) for k, v in ev["scores"].items()}
    rows = {r[0]: r for r in page.table_rows[""] if len(r) == 5 and r[0].startswith(("Joint", "Bank", "Plain"))}
    joint = rows["Joint model (SecureBoost, bank + partner)"]
    assert joint[1] == f"{auc['joint']:.4f}"
    assert joint[3] == f"{ks_statistic(y, np.array(ev['scores']['joint'])):.4f}"
    assert rows["Bank-only model (bank's features)"][1] == f"{auc['bank_only']:.4f}"
    deltas = {r[0]: r[2] for r in page.table_rows[""] if r[0] in ("Value of partner data", "Cost of privacy")}
    assert deltas["Value of partner data"] == f"{auc['joint'] - auc['bank_only']:+.4f}".replace("-", "−")
    assert deltas["Cost of privacy"] == f"{auc['plaintext'] - auc['joint']:+.4f}".replace("-", "−")


def test_without_a_plaintext_baseline_the_cost_of_privacy_is_not_measured(tmp_path: Path) -> None:
    s = sample_summary(n_holdout=500)
    del s["evaluation"]["scores"]["plaintext"]
    s["evaluation"]["scores"]["logistic scorecard"] = s["evaluation"]["scores"]["bank_only"]
    page = _parse(render_report(s, tmp_path / "r.html"))
    deltas = {r[0]: r[2] for r in page.table_rows[""] if r[0] in ("Value of partner data", "Cost of privacy")}
    assert deltas["Cost of privacy"] == "not measured (no plaintext baseline)"
    assert "no plaintext baseline in this job" in page.all_text
    assert page.count("polyline", "series") == 4 + 2  # joint, bank-only, scorecard, the extra model; KS: two curves
    assert "logistic scorecard" in page.all_text


def test_iv_table_is_sorted_and_labelled(summary: dict[str, Any], page: _Page) -> None:
    rows = page.table_rows["iv"][1:]
    assert len(rows) == len(summary["iv"])
    ivs = [float(r[3]) for r in rows]
    assert ivs == sorted(ivs, reverse=True)
    for r in rows:
        assert r[4] == iv_strength(float(r[3]))
    by_name = {f["feature"]: f for f in summary["iv"]}
    assert {r[1] for r in rows} == set(by_name)


@pytest.mark.parametrize(
    ("iv", "label"),
    [(0.0, "not predictive"), (0.019, "not predictive"), (0.02, "weak"), (0.099, "weak"), (0.1, "medium"),
     (0.29, "medium"), (0.3, "strong"), (0.49, "strong"), (0.5, "very strong (check for leakage)")],
)
def test_iv_strength_thresholds(iv: float, label: str) -> None:
    assert iv_strength(iv) == label


def test_monotonic_flag_ignores_the_missing_bin() -> None:
    def feature(woes: list[float], missing: list[bool], given: bool | None = None) -> FeatureIv:
        bins = [WoeBin(f"b{i}", 10, 2, w, m) for i, (w, m) in enumerate(zip(woes, missing, strict=True))]
        return FeatureIv("f", "bank", 0.1, bins, monotonic=given)

    assert _monotonic(feature([-1.0, -0.2, 0.3, 0.9], [False] * 4))
    assert _monotonic(feature([0.9, 0.3, 0.3, -1.0], [False] * 4))
    assert not _monotonic(feature([-1.0, 0.5, 0.3, 0.9], [False] * 4))
    assert _monotonic(feature([-1.0, -0.2, 0.3, -5.0], [False, False, False, True]))
    assert not _monotonic(feature([-1.0, -0.2, 0.3], [False] * 3, given=False))  # the given flag wins


def test_ledger_is_readable_grouped_and_cross_checked(summary: dict[str, Any], page: _Page) -> None:
    text = page.all_text
    assert "hash chain verified" in text and summary["ledgers"][0]["head"] in text
    assert "What bank learned" in text and "What partner revealed" in text
    rows = page.table_rows["ledger"]
    # 30 trees x 4 levels of histograms collapse into one row
    assert any(r[2] == sb_disclosures.HISTOGRAMS.what and r[5] == "×120" for r in rows)
    # the mirror check compares the two ledgers (the sample's first entry was renamed on one side only)
    assert "disagree on 2 disclosures" in text


def _ledger_rows(s: dict[str, Any], tmp_path: Path) -> tuple[list[list[str]], str]:
    page = _parse(render_report(s, tmp_path / "r.html"))
    return page.table_rows["ledger"], page.all_text


def test_a_grouped_row_names_every_feature(tmp_path: Path) -> None:
    rows, _ = _ledger_rows(sample_summary(n_holdout=300), tmp_path)
    edges = [r for r in rows if r[2] == woe_disclosures.BIN_EDGES.what]
    assert edges and all(r[5] == f"×{len(PARTNER_FEATURES)}" for r in edges)  # learned by bank, revealed by partner
    for r in edges:
        assert r[6] == "feature = " + ", ".join(PARTNER_FEATURES)
    counts = [r for r in rows if r[2] == woe_disclosures.BIN_COUNTS.what]
    # the detail every member shares is kept; what differs per member (none here) is not
    assert counts[0][6] == "feature = " + ", ".join(PARTNER_FEATURES) + "; min_bin_size = 50"
    lone = [r for r in rows if r[2] == psi_disclosures.SET_SIZE.what]
    assert lone[0][5] == "1" and lone[0][6].startswith("n = ")


def test_ledgers_that_name_different_features_disagree(tmp_path: Path) -> None:
    s = sample_summary(n_holdout=300)
    _, text = _ledger_rows(s, tmp_path)
    assert "agree: both record the same" in text
    partner = s["ledgers"][1]["entries"]
    edges = next(e for e in partner if e["what"] == woe_disclosures.BIN_EDGES.what and e["detail"]["feature"] == "AGE")
    edges["detail"]["feature"] = "SALARY"  # the partner's ledger says another feature's edges were revealed
    _, text = _ledger_rows(s, tmp_path)
    assert "disagree on 2 disclosures" in text
    assert "bin edges of a feature (plaintext, feature AGE) only in bank's ledger" in text
    assert "bin edges of a feature (plaintext, feature SALARY) only in partner's ledger" in text


def test_the_sample_ledger_records_only_catalogued_disclosures() -> None:
    """Each sample entry is an entry of the catalogue of a protocol its step's kind speaks."""
    s = sample_summary(n_holdout=300)
    kind_of_step = {st["name"]: st["kind"] for st in s["job"]["steps"]}
    catalogue = {
        (k.protocol, k.what, k.form)
        for kinds in (psi_disclosures.DISCLOSURES, woe_disclosures.DISCLOSURES, sb_disclosures.DISCLOSURES)
        for k in kinds
    }
    for ledger in s["ledgers"]:
        for e in ledger["entries"]:
            protocols = {p.name for p in STEPS[kind_of_step[e["step"]]].protocols}
            assert any((p, e["what"], e["form"]) in catalogue for p in protocols), e


def test_unverified_and_agreeing_ledgers_are_reported(tmp_path: Path) -> None:
    s = sample_summary(n_holdout=500)
    s["ledgers"][1]["verified"] = False
    s["ledgers"][1]["note"] = "entry 17: hash mismatch"
    page = _parse(render_report(s, tmp_path / "r.html"))
    text = page.all_text
    assert "hash chain NOT verified" in text and "entry 17: hash mismatch" in text and "NOT verified" in text
    assert "agree: both record the same" in text


def test_rendering_is_deterministic(summary: dict[str, Any], tmp_path: Path) -> None:
    a = render_report(summary, tmp_path / "a.html", generated_at="t").read_bytes()
    b = render_report(copy.deepcopy(summary), tmp_path / "b.html", generated_at="t").read_bytes()
    assert a == b
    assert len(a) < 400_000  # curves are thinned; the predictions are not embedded


def test_accepts_a_parsed_summary(summary: dict[str, Any], tmp_path: Path) -> None:
    parsed = Summary.from_dict(summary)
    assert parsed.job.parties[0].role == "label_party" and parsed.iv[0].bins[0].count > 0
    out = render_report(parsed, tmp_path / "sub" / "r.html", generated_at="fixed")
    assert out == tmp_path / "sub" / "r.html" and out.stat().st_size > 10_000


def _drop(*keys: str | int) -> Callable[[dict[str, Any]], None]:
    def mutate(s: dict[str, Any]) -> None:
        target: Any = s
        for k in keys[:-1]:
            target = target[k]
        del target[keys[-1]]

    return mutate


def _set(value: Any, *keys: str | int) -> Callable[[dict[str, Any]], None]:
    def mutate(s: dict[str, Any]) -> None:
        target: Any = s
        for k in keys[:-1]:
            target = target[k]
        target[keys[-1]] = value

    return mutate


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (_drop("job", "job_id"), r"summary\.job\.job_id is missing"),
        (_drop("evaluation"), r"summary\.evaluation is missing"),
        (_drop("iv", 2, "bins", 0, "woe"), r"summary\.iv\[2\]\.bins\[0\]\.woe is missing"),
        (_set(1, "job", "parties", 0, "jobid"), r"summary\.job\.parties\[0\] has unknown keys \['jobid'\]"),
        (_set("many", "psi", "intersection_size"), r"summary\.psi\.intersection_size must be an integer"),
        (_set(float("inf"), "iv", 0, "bins", 1, "woe"), r"summary\.iv\[0\]\.bins\[1\]\.woe must be finite"),
        (_set("lender", "job", "parties", 0, "role"), r"summary\.job\.parties\[0\]\.role is 'lender'"),
        (_set("insurer", "iv", 3, "party"), r"summary\.iv\[3\]\.party is 'insurer'"),
        (_set("nobody", "psi", "mode"), r"summary\.psi\.mode is 'nobody'"),
        (_set([0.5], "evaluation", "scores", "joint"), r"scores\['joint'\] has 1 scores"),
        (_drop("evaluation", "scores", "bank_only"), r"lacks the models \['bank_only'\]"),
        (_set("yesterday", "job", "started_at"), r"summary\.job\.started_at .*ISO 8601"),
        (_set("2026-11-23T10:00:00", "job", "finished_at"), r"needs a time zone"),
        (_set("feature_party", "job", "parties", 0, "role"), r"exactly one label_party"),
        (_set("yes", "ledgers", 0, "verified"), r"summary\.ledgers\[0\]\.verified must be true or false"),
        (_set([], "iv", 0, "bins"), r"summary\.iv\[0\]\.bins is empty"),
        (_set("not a dict", "job"), r"summary\.job must be an object"),
    ],
)
def test_invalid_summaries_are_refused_with_the_path(
    mutate: Callable[[dict[str, Any]], None], message: str, tmp_path: Path
) -> None:
    s = sample_summary(n_holdout=300)
    mutate(s)
    with pytest.raises(DataError, match=message):
        render_report(s, tmp_path / "r.html")
    assert not list(tmp_path.iterdir())  # nothing written


def test_write_is_atomic_and_readable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "r.html"
    path.write_text("old report")
    import misuan.atomic_files as atomic_files  # the report is written through it

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(atomic_files.os, "fsync", broken)
    with pytest.raises(OSError, match="disk full"):
        render_report(sample_summary(n_holdout=300), path)
    assert path.read_text() == "old report" and os.listdir(tmp_path) == ["r.html"]
    monkeypatch.undo()
    old = os.umask(0o022)
    try:
        render_report(sample_summary(n_holdout=300), path)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def _screenshot_module() -> Any:
    script = Path(__file__).resolve().parents[1] / "scripts" / "screenshot_report.py"
    spec = importlib.util.spec_from_file_location("screenshot_report", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(
    not any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")),
    reason="no headless Chromium installed (apt-get install chromium)",
)
def test_headless_chromium_renders_the_report(summary: dict[str, Any], tmp_path: Path) -> None:
    html = render_report(summary, tmp_path / "r.html", generated_at="fixed")
    png = _screenshot_module().screenshot(html, tmp_path / "r.png", width=1280, height=4000)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1280, 4000)
    # a blank or unstyled page compresses to a few KB; charts and tables do not
    assert len(data) > 150_000


def test_adapters_for_the_woe_and_secureboost_outputs(tmp_path: Path) -> None:
    s = sample_summary(n_holdout=500)
    # the WOE step's WoeResult.to_dict() shape: features with method/trend/edges and per-bin details
    woe_result = {
        "n_rows": 21000,
        "n_positives": 4650,
        "features": [
            {
                "feature": "AGE", "method": "chimerge", "iv": 0.031, "ks": 0.06, "monotonic": False,
                "trend": "none", "n_rows": 21000, "n_positives": 4650, "edges_shared": True,
                "bins": [
                    {"index": 0, "label": "(-inf, 30]", "lower": "-inf", "upper": 30.0, "contains_missing": False,
                     "count": 9000, "positives": 2000, "woe": -0.02, "iv": 0.0001},
                    {"index": 1, "label": "(30, inf)", "lower": 30.0, "upper": "inf", "contains_missing": False,
                     "count": 12000, "positives": 2650, "woe": 0.01, "iv": 0.0001},
                ],
            }
        ],
    }
    s["iv"] = iv_from_woe_result(woe_result, "partner")
    s["feature_importance"] = importance_from_secureboost(
        {"bank:PAY_0": {"total_gain": 812.5, "weight": 41.0}, "partner:x:y": {"total_gain": 3.0, "weight": 2.0}}
    )
    assert s["feature_importance"][1] == {"feature": "x:y", "party": "partner", "gain": 3.0, "splits": 2}
    page = _parse(render_report(s, tmp_path / "r.html"))
    assert "chimerge" in page.all_text and "x:y" in page.all_text
    with pytest.raises(DataError, match="not 'party:feature'"):
        importance_from_secureboost({"PAY_0": {"total_gain": 1.0, "weight": 1.0}})
    with pytest.raises(DataError, match="'features' list"):
        iv_from_woe_result({"rows": []}, "bank")


def test_ledger_export_rows_are_accepted(tmp_path: Path) -> None:
    s = sample_summary(n_holdout=500)
    for ledger in s["ledgers"]:
        prev = "0" * 64
        for seq, row in enumerate(ledger["entries"]):
            row.update(seq=seq, job_id="j", recorded_at="2026-11-23T10:00:00Z", prev_hash=prev, hash=f"{seq:064x}")
            prev = row["hash"]
    s["ledgers"][0]["entries"][0]["detail"] = {"edges": [1.5, 2.5], "size": 21000}
    text = _parse(render_report(s, tmp_path / "r.html")).all_text
    assert "edges = [1.5, 2.5]; size = 21,000" in text


# --- the lending section ---------------------------------------------------------------------------
def test_lending_section_shows_decisions_caps_disclosure_notice_and_copy(summary: dict[str, Any], page: _Page) -> None:
    lending = summary["lending"]
    d = lending["decisions"]
    text = page.all_text
    assert "lending" in page.ids() and ("a", {"href": "#lending"}) in page.tags
    # the bands add up to the decisions, and the observed default rate comes from the hold-out labels
    bands = page.table_rows["bands"][1:]
    assert sum(int(r[1].replace(",", "")) for r in bands) == len(d["approved"])
    assert sum(int(r[2].replace(",", "")) for r in bands) == sum(d["approved"])
    assert all(r[3] == "0.0 %" for r in bands if float(r[0].split("–")[0]) >= 15)  # above max_pd: declined
    # the caps check: every rule with its id, result and source
    caps = page.table_rows["caps"][1:]
    assert [r[0] for r in caps] == [c["rule_id"] for c in lending["product"]["caps"]]
    assert {"cn.financing_cost.24", "cn.internet_loan.line_200k"} <= {r[0] for r in caps}
    assert all(r[5].endswith("pass") for r in caps) and all("CBIRC" in r[6] or "NFRA" in r[6] for r in caps)
    assert "cn.joint_lending.partner_share_30" in text  # listed as not checked
    # the disclosure in both languages, annualised rate first and largest; the notice in both languages
    assert page.count("section", "misuan-loan-disclosure") == 2 and page.count("section", "misuan-adverse-action") == 2
    assert "Annualised rate (compound, IRR)" in text and "年化利率（复利，IRR）" in text
    assert "Notice of action taken" in text and "授信结果通知" in text
    for r in lending["notice"]["reasons"]:
        assert r["en"] in text and r["zh"] in text
    # the copy findings: one highlighted span per finding not about the whole text
    violating = lending["copy_checks"][1]
    marked = [f for f in violating["findings"] if f["rule_id"] != "missing-risk-warning"]
    assert {f["rule_id"] for f in violating["findings"]} >= {
        "rate-without-annualised", "zero-interest-with-fees", "student-targeting", "guaranteed-approval",
        "over-borrowing", "missing-risk-warning"}
    assert page.count("mark", "finding") == len(marked) and not lending["copy_checks"][0]["findings"]


def test_the_disclosure_puts_the_annualised_rate_first_and_largest(summary: dict[str, Any]) -> None:
    html = render_html_of(summary)
    block = html[html.index('<section class="misuan-loan-disclosure" lang="en">'):]
    block = block[: block.index("</section>")]
    sizes = [float(x) for x in re.findall(r"font-size:([0-9.]+)em", block)]
    assert sizes and sizes[0] == max(sizes)  # the headline is the annualised rate
    first = block[block.index("<p"): block.index("</p>")]
    assert "Annualised rate" in first and "Monthly rate" not in first


def render_html_of(s: dict[str, Any]) -> str:
    return render_html(Summary.from_dict(s), generated_at="fixed")


def test_a_summary_without_lending_renders_as_before(tmp_path: Path) -> None:
    s = sample_summary(n_holdout=300)
    del s["lending"]
    html = render_html_of(s)
    assert 'id="lending"' not in html and "#lending" not in html and LENDING_CSS not in html
    assert "mark.finding" not in html and "Credit decisions" not in html
    assert html.count("<section") == len(SECTIONS) - 1


def test_copy_spans_are_highlighted_with_overlaps_split() -> None:
    text = "<b>秒批必下款</b> ok"
    spans = [CopyFinding("a", "error", "t", 3, 5, "秒批"), CopyFinding("b", "warning", "t", 4, 8, "批必下款"),
             CopyFinding("c", "warning", "t", 0, len(text), text)]  # the whole text: listed, not marked
    out = highlight(text, spans)
    assert "<b>" not in out and "&lt;b&gt;" in out
    assert out.count("<mark") == 3  # 秒 | 批 | 必下款
    assert '<mark class="finding error" title="[1] a; [2] b">批</mark><sup>1</sup>' in out
    assert '<mark class="finding warning" title="[2] b">必下款</mark><sup>2</sup>' in out


def test_lending_summary_picks_its_examples_and_checks_the_worst_case() -> None:
    rng = np.random.default_rng(3)
    pds = rng.beta(1.2, 6, 400).tolist()
    reason = REASONS["PD_HIGH"]
    out = lending_summary(pds, LendingSetup(), dt.date(2026, 11, 23),
                          notice_reasons=lambda rows: [((reason,), "test") if i % 2 == 0 else ((), "none") for i in rows])
    d = out["decisions"]
    approved = [i for i, ok in enumerate(d["approved"]) if ok]
    declined = [i for i, ok in enumerate(d["approved"]) if not ok]
    assert approved and declined and all(pds[i] > 0.1 for i in declined)
    p = out["product"]
    assert p["principal"] == max(d["limit"]) and p["annual_rate"] == max(d["rate"][i] for i in approved)
    assert p["annualised_simple"] > p["annual_rate"]  # the upfront fee counts
    assert out["example_loan"]["applicant"] in approved
    assert out["example_loan"]["principal"] == d["limit"][out["example_loan"]["applicant"]]
    notice = out["notice"]
    assert notice["applicant"] in declined and notice["applicant"] % 2 == 0
    assert notice["explained"] == sum(1 for i in declined if i % 2 == 0) and notice["reasons"][0]["code"] == "PD_HIGH"
    assert "PD_HIGH" in notice["policy_reasons"] and "DTI_HIGH" not in notice["policy_reasons"]
    assert set(d["decline_reasons"]) <= {"PD_HIGH", "PRICE_ABOVE_CAP"}


def test_a_notice_without_reasons_says_so(tmp_path: Path) -> None:
    s = sample_summary(n_holdout=300)
    s["lending"]["notice"]["reasons"] = []
    s["lending"]["notice"]["reasons_from"] = "no per-customer contributions."
    page = _parse(render_report(s, tmp_path / "r.html"))
    assert "Reasons unavailable: no per-customer contributions." in page.all_text
    assert page.count("section", "misuan-adverse-action") == 0


def _first(flags: list[bool], value: bool) -> int:
    return flags.index(value)


def _lending(mutate: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    return lambda s: mutate(s["lending"])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (_lending(_set(1, "colour")), r"summary\.lending has unknown keys \['colour'\]"),
        (_lending(_drop("decisions", "rate_cap")), r"summary\.lending\.decisions\.rate_cap is missing"),
        (_lending(_set("xgb", "decisions", "model")), r"summary\.lending\.decisions\.model is 'xgb', not one of"),
        (_lending(lambda x: x["decisions"]["limit"].pop()), r"summary\.lending\.decisions\.limit has 299 values for 300"),
        (_lending(lambda x: x["decisions"]["rate"].__setitem__(_first(x["decisions"]["approved"], True), 0.5)),
         r"summary\.lending\.decisions\.rate\[\d+\] is 0\.5, above the rate cap 0\.24"),
        (_lending(lambda x: x["decisions"]["limit"].__setitem__(_first(x["decisions"]["approved"], False), 500.0)),
         r"summary\.lending\.decisions\.limit\[\d+\] is 500\.00 for a declined applicant"),
        (_lending(_set(["yes"], "decisions", "approved")), r"summary\.lending\.decisions\.approved\[0\] must be true or false"),
        (_lending(_set({"TOO_YOUNG": 3}, "decisions", "decline_reasons")), r"decline_reasons has unknown reason codes \['TOO_YOUNG'\]"),
        (_lending(_set(-5.0, "product", "principal")), r"summary\.lending\.product\.principal must be positive"),
        (_lending(_set("maybe", "product", "caps", 0, "status")), r"summary\.lending\.product\.caps\[0\]\.status is 'maybe'"),
        (_lending(_set("next week", "product", "contract_date")), r"summary\.lending\.product\.contract_date is 'next week', not an ISO date"),
        (_lending(_set(1.0, "product", "upfront_fee_rate")), r"summary\.lending\.product\.upfront_fee(_rate)? must"),
        (_lending(lambda x: x["example_loan"].__setitem__("applicant", _first(x["decisions"]["approved"], False))),
         r"summary\.lending\.example_loan\.applicant is \d+, a customer the policy declined"),
        (_lending(_set(10**6, "example_loan", "principal")), r"summary\.lending\.example_loan\.principal is 1,000,000\.00, above"),
        (_lending(lambda x: x["notice"].__setitem__("applicant", _first(x["decisions"]["approved"], True))),
         r"summary\.lending\.notice\.applicant is \d+, a customer the policy approved"),
        (_lending(_set(300, "notice", "applicant")), r"summary\.lending\.notice\.applicant is 300, not an index"),
        (_lending(lambda x: x["notice"]["reasons"].extend([{"code": f"R{k}", "en": "e", "zh": "z"} for k in range(3)])),
         r"summary\.lending\.notice\.reasons must be at most 4 distinct reasons"),
        (_lending(_set("sorry", "copy_checks", 1, "findings", 1, "text")),
         r"summary\.lending\.copy_checks\[1\]\.findings\[1\]\.text is 'sorry', not the text it spans"),
        (_lending(_set(999, "copy_checks", 1, "findings", 1, "end")), r"summary\.lending\.copy_checks\[1\]\.findings\[1\] spans"),
        (_lending(_set("fatal", "copy_checks", 1, "findings", 0, "severity")), r"findings\[0\]\.severity is 'fatal'"),
    ],
)
def test_invalid_lending_data_is_refused_with_the_path(
    mutate: Callable[[dict[str, Any]], None], message: str, tmp_path: Path
) -> None:
    s = sample_summary(n_holdout=300)
    mutate(s)
    with pytest.raises(DataError, match=message):
        render_report(s, tmp_path / "r.html")
    assert not list(tmp_path.iterdir())


def test_the_lending_setup_refuses_a_policy_sized_for_another_term() -> None:
    with pytest.raises(ParamError, match=r"lending setup parameter policy\.term_months: must be the product's term_months \(12\)"):
        LendingSetup(policy=PolicyParams(term_months=24))
    with pytest.raises(ParamError, match=r"lending setup parameter product\.upfront_fee_rate"):
        LendingSetup(product={"upfront_fee_rate": 1.5})  # type: ignore[arg-type]


def test_the_scorecard_table_shows_rows_default_rates_and_the_woe_of_a_woe_encoded_card(tmp_path: Path) -> None:
    s = sample_summary(n_holdout=500)
    rows = s["scorecard"]["rows"]
    for i, r in enumerate(rows):
        if r.get("party", "bank") == "bank":
            r["woe"] = 0.25 - 0.1 * i
    text = _parse(render_report(s, tmp_path / "r.html")).all_text
    first = rows[0]
    assert "WOE" in text and f"{first['woe']:+.3f}" in text
    assert f"{first['count']:,}" in text and f"{first['event_rate']:.2%}" in text
    s["scorecard"]["rows"] = [{k: v for k, v in r.items() if k != "woe"} for r in rows]
    assert "WOE</th>" not in render_report(s, tmp_path / "r2.html").read_text()  # dummy encoding: no WOE column
