"""The model validation report: a model card (Mitchell et al. 2019) for a joint credit model, with
performance, challengers, analyses by protected group, lineage, parameters and the ledgers' summary.

:func:`validation_document` builds the plain document (``validation.json``) from what the bank holds
after a job: its step outputs, the spec, its ledger and the model parts' hashes; :func:`render_validation`
turns it into a self-contained HTML page. The document pins the model: the SHA-256 of every party's
model part it validates, so an auditor can tie the report to the files in an audit bundle
(:mod:`misuan.node.audit_bundle`).

Performance on the hold-out rows: AUC, KS, Gini (``2 AUC - 1``), a calibration table by PD decile
(mean PD against the observed default rate) and the confusion matrix at the policy's cut-off
(approve below it). Challengers: whatever comparison models the caller scored on the same rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from misuan.ml.metrics import ks_statistic, roc_auc
from misuan.report.markup import esc, html_table, percent, section, thousands
from misuan.report.render import CSS

__all__ = ["calibration_table", "confusion_at", "render_validation", "validation_document"]


def calibration_table(y: np.ndarray, pd_: np.ndarray, n_bands: int = 10) -> list[dict[str, Any]]:
    """Rows of equal count by PD (deciles): count, mean PD, observed default rate."""
    order = np.argsort(pd_, kind="stable")
    out = []
    for k, idx in enumerate(np.array_split(order, n_bands), start=1):
        if idx.size:
            out.append({"band": k, "rows": int(idx.size), "mean_pd": float(pd_[idx].mean()),
                        "default_rate": float(y[idx].mean()), "pd_from": float(pd_[idx].min()), "pd_to": float(pd_[idx].max())})
    return out


def confusion_at(y: np.ndarray, pd_: np.ndarray, cutoff: float) -> dict[str, int]:
    """Approve below ``cutoff``: approved-and-repaid, approved-and-defaulted, declined-repaid, declined-defaulted."""
    approve = pd_ < cutoff
    return {"approved_repaid": int((approve & (y == 0)).sum()), "approved_defaulted": int((approve & (y == 1)).sum()),
            "declined_repaid": int((~approve & (y == 0)).sum()), "declined_defaulted": int((~approve & (y == 1)).sum())}


def _metrics(y: np.ndarray, s: np.ndarray) -> dict[str, float]:
    auc = roc_auc(y, s)
    return {"auc": auc, "ks": ks_statistic(y, s), "gini": 2 * auc - 1}


def validation_document(
    *, model: Mapping[str, Any], intended_use: Sequence[str], out_of_scope: Sequence[str], lineage: Sequence[Mapping[str, Any]],
    steps: Sequence[Mapping[str, Any]], y_true: Sequence[int], scores: Mapping[str, Sequence[float]],
    model_names: Mapping[str, str], cutoff: float, fairness: Mapping[str, Any] | None, ledgers: Sequence[Mapping[str, Any]],
    caveats: Sequence[str], monitoring: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The report's document; ``scores["joint"]`` is the validated model's, the others its challengers."""
    y = np.asarray(y_true, dtype=np.int64)
    joint = np.asarray(scores["joint"], dtype=np.float64)
    perf = {k: _metrics(y, np.asarray(v, dtype=np.float64)) for k, v in scores.items()}
    return {
        "format": "misuan-validation", "version": 1, "model": dict(model), "intended_use": list(intended_use),
        "out_of_scope": list(out_of_scope), "lineage": [dict(x) for x in lineage], "steps": [dict(s) for s in steps],
        "evaluation": {"rows": int(y.size), "default_rate": float(y.mean()) if y.size else 0.0, "cutoff": cutoff,
                       "performance": perf, "model_names": dict(model_names),
                       "calibration": calibration_table(y, joint), "confusion": confusion_at(y, joint, cutoff)},
        "fairness": dict(fairness) if fairness else None, "monitoring": dict(monitoring) if monitoring else None,
        "ledgers": [dict(x) for x in ledgers], "caveats": list(caveats),
    }


# --- HTML ---------------------------------------------------------------------------------------
def _details(doc: Mapping[str, Any]) -> str:
    m = doc["model"]
    rows = [[esc(k), esc(v)] for k, v in m.items() if not isinstance(v, (dict, list))]
    pinned = {**m.get("part_hashes", {}), **m.get("challenger_part_hashes", {})}
    parts = html_table(["model part", "SHA-256"], [[esc(p), f"<code>{esc(h)}</code>"] for p, h in pinned.items()])
    feats = html_table(["party", "features"], [[esc(p), esc(", ".join(f))] for p, f in m.get("features", {}).items()])
    return html_table(["field", "value"], rows) + parts + feats


def _use(doc: Mapping[str, Any]) -> str:
    def ul(items: Sequence[str]) -> str:
        return "<ul>" + "".join(f"<li>{esc(x)}</li>" for x in items) + "</ul>"
    return f"<h3>Intended use</h3>{ul(doc['intended_use'])}<h3>Out of scope</h3>{ul(doc['out_of_scope'])}"


def _performance(doc: Mapping[str, Any]) -> str:
    ev = doc["evaluation"]
    perf = html_table(["model", "AUC", "KS", "Gini"], [
        [esc(ev["model_names"].get(k, k)), f"{v['auc']:.4f}", f"{v['ks']:.4f}", f"{v['gini']:.4f}"] for k, v in ev["performance"].items()
    ], numeric=(1, 2, 3))
    cal = html_table(["PD decile", "rows", "PD range", "mean PD", "default rate"], [
        [str(r["band"]), thousands(r["rows"]), f"{r['pd_from']:.3f}–{r['pd_to']:.3f}", percent(r["mean_pd"]), percent(r["default_rate"])]
        for r in ev["calibration"]
    ], numeric=(1, 3, 4))
    c = ev["confusion"]
    conf = html_table(["", "repaid", "defaulted"], [["approved", thousands(c["approved_repaid"]), thousands(c["approved_defaulted"])],
                                                   ["declined", thousands(c["declined_repaid"]), thousands(c["declined_defaulted"])]],
                      numeric=(1, 2))
    return (f"<p>{thousands(ev['rows'])} hold-out customers, default rate {percent(ev['default_rate'])}.</p>{perf}"
            f"<h3>Calibration</h3>{cal}<h3>Decisions at the policy's cut-off (approve below PD {ev['cutoff']:g})</h3>{conf}")


def _fairness(doc: Mapping[str, Any]) -> str:
    f = doc.get("fairness")
    if not f:
        return "<p>No fairness audit ran for this model.</p>"
    parts = [f"<p>Policy {esc(f.get('policy', ''))}; decisions: approve below PD {f.get('approve_below', 0):g} "
             f"({percent(f.get('approval_rate', 0.0))} approved of {thousands(int(f.get('rows', 0)))}). Groups of the partner's "
             "attributes were summed under encryption; groups below the policy's small-cell size are merged.</p>"]
    warnings = list(f.get("model_feature_warnings", [])) + list(f.get("peer_model_feature_warnings", []))
    if warnings:
        parts.append("<div class=warn><strong>Protected attributes used as model features:</strong><ul>"
                     + "".join(f"<li>{esc(w)}</li>" for w in warnings) + "</ul></div>")
    for a in f.get("audits", []):
        rows = [[esc(g["group"]), thousands(g["rows"]), _pct(g["approval_rate"]), _pct(g["approval_rate_repaid"]),
                 _pct(g["mean_pd"]), _pct(g["default_rate"])] for g in a["groups"]]
        parts.append(f"<h3>{esc(a['attribute'])} ({esc(a['protected_as'])}): approval-rate ratio {a['approval_ratio']:.2f}, "
                     f"equal-opportunity gap {a['equal_opportunity_gap']:.3f}, calibration gap {a['calibration_gap']:.3f}</h3>"
                     + html_table(["group", "rows", "approved", "approved if repaid", "mean PD", "default rate"], rows, numeric=(1, 2, 3, 4, 5)))
    pricing = f.get("pricing")
    if pricing is not None:
        verdict = "passes" if not pricing["problems"] else "fails: " + "; ".join(pricing["problems"])
        parts.append(f"<p><strong>Pricing:</strong> the lending policy prices and sizes limits on "
                     f"{esc(', '.join(pricing['risk_factors']))} only (the declared risk factors, none protected): {esc(verdict)}.</p>")
    findings = f.get("findings", [])
    parts.append("<p><strong>Findings:</strong> " + ("none" if not findings else "</p><ul>" + "".join(f"<li>{esc(x)}</li>" for x in findings) + "</ul>"))
    return "".join(parts)


def _pct(x: float | None) -> str:
    return "–" if x is None else percent(x)


def _lineage(doc: Mapping[str, Any]) -> str:
    data = html_table(["party", "role", "dataset", "SHA-256", "rows"], [
        [esc(x["party"]), esc(x["role"]), esc(x["file"]), f"<code>{esc(x['sha256'][:16])}…</code>", thousands(int(x["rows"]))]
        for x in doc["lineage"]
    ], numeric=(4,))
    steps = html_table(["step", "kind", "parameters"], [[esc(s["name"]), esc(s["kind"]), f"<code>{esc(s['params'])}</code>"] for s in doc["steps"]])
    return data + "<h3>Steps and their parameters</h3>" + steps


def _ledgers(doc: Mapping[str, Any]) -> str:
    return html_table(["party", "entries", "sent", "received", "chain"], [
        [esc(x["party"]), thousands(x["entries"]), thousands(x["sent"]), thousands(x["received"]), "intact" if x["verified"] else "BROKEN"]
        for x in doc["ledgers"]
    ], numeric=(1, 2, 3))


def render_validation(doc: Mapping[str, Any]) -> str:
    """The validation report as one self-contained HTML page (every text escaped)."""
    mon = doc.get("monitoring")
    monitoring = ("<p>No later period has been monitored yet: run a <code>monitor</code> step when one arrives.</p>" if not mon
                  else "<ul>" + "".join(f"<li>{esc(a)}</li>" for a in mon.get("alerts", [])) + "</ul>" if mon.get("alerts")
                  else "<p>The monitored period raised no alert.</p>")
    body = (section("details", "Model details", _details(doc)) + section("use", "Intended use", _use(doc))
            + section("performance", "Performance and challengers", _performance(doc))
            + section("fairness", "Analyses by protected group", _fairness(doc))
            + section("lineage", "Data lineage and parameters", _lineage(doc))
            + section("stability", "Stability", monitoring) + section("ledgers", "What each party disclosed", _ledgers(doc))
            + section("caveats", "Caveats and limitations", "<ul>" + "".join(f"<li>{esc(c)}</li>" for c in doc["caveats"]) + "</ul>"))
    title = f"Validation report: {doc['model'].get('name', 'joint model')}"
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{esc(title)}</title>"
            f"<style>{CSS}.warn{{border-left:4px solid #b45309;padding:.3em .8em;background:#fff7ed}}</style></head>"
            f"<body><main><header><h1>{esc(title)}</h1><p class=sub>job {esc(doc['model'].get('job_id', ''))} · "
            f"misuan {esc(doc['model'].get('misuan_version', ''))}</p></header>{body}</main></body></html>")
