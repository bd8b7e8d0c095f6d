"""The model sections of the report: AUC, Gini and KS of each model, ROC and KS curves, score distribution.

All metrics are computed here from the hold-out predictions in the summary (:mod:`misuan.ml.metrics`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from misuan.ml.metrics import KsCurve, RocCurve, ks_curve, roc_auc, roc_curve
from misuan.report import svg
from misuan.report.markup import esc, explain, html_table, percent, section, signed, thousands
from misuan.report.schema import MODEL_KEYS, PLAINTEXT, Summary

__all__ = [
    "ModelResult", "cost_of_privacy", "curves_section", "model_results", "models_section", "outcome_histograms",
    "score_section",
]

# (colour, dash, width): the plaintext curve is dotted on top of the joint one, which it often hides
MODEL_STYLE = {
    "joint": ("#1f5fa8", "", 3.2),
    "bank_only": ("#d9822b", "8 5", 2.2),
    "plaintext": ("#14702f", "0.5 5", 2.6),
}
OTHER_MODEL_STYLE = ("#555555", "3 3", 2.0)
MODEL_NAMES = {
    "joint": "Joint model (SecureBoost, bank + partner)",
    "bank_only": "Bank-only model (bank's features)",
    "plaintext": "Plaintext XGBoost (joined data, no privacy)",
}


@dataclasses.dataclass(frozen=True)
class ModelResult:
    key: str
    name: str
    auc: float
    ks: float
    roc: RocCurve
    ks_curve: KsCurve

    @property
    def gini(self) -> float:
        return 2.0 * self.auc - 1.0


def model_results(summary: Summary) -> list[ModelResult]:
    """AUC, KS and curves of every evaluated model: joint, bank-only, plaintext (if given), then others."""
    ev = summary.evaluation
    y = np.asarray(ev.y_true, dtype=np.int8)
    known = [k for k in (*MODEL_KEYS, PLAINTEXT) if k in ev.scores]
    keys = known + [k for k in ev.scores if k not in known]
    out = []
    for key in keys:
        p = np.asarray(ev.scores[key], dtype=np.float64)
        out.append(
            ModelResult(
                key=key,
                name=ev.model_names.get(key, MODEL_NAMES.get(key, key)),
                auc=roc_auc(y, p),
                ks=ks_curve(y, p).ks,
                roc=roc_curve(y, p),
                ks_curve=ks_curve(y, p),
            )
        )
    return out


def cost_of_privacy(models: dict[str, ModelResult]) -> float | None:
    """Plaintext AUC - joint AUC, or None when the job had no plaintext baseline."""
    plain = models.get(PLAINTEXT)
    return None if plain is None else plain.auc - models["joint"].auc


def models_section(summary: Summary, results: list[ModelResult]) -> str:
    models = {r.key: r for r in results}
    joint, bank = models["joint"], models["bank_only"]
    rows = [
        [
            f'<span class="swatch" style="background:{MODEL_STYLE.get(r.key, OTHER_MODEL_STYLE)[0]}"></span>{esc(r.name)}',
            f"{r.auc:.4f}",
            f"{r.gini:.4f}",
            f"{r.ks:.4f}",
            esc(signed(r.auc - joint.auc, 4)) if r.key != "joint" else "–",
        ]
        for r in results
    ]
    table = html_table(["Model", "AUC", "Gini", "KS", "AUC vs joint"], rows, numeric=(1, 2, 3, 4))
    value, cost = joint.auc - bank.auc, cost_of_privacy(models)
    deltas = html_table(
        ["Measure", "Definition", "AUC points"],
        [
            ["<strong>Value of partner data</strong>", "joint AUC − bank-only AUC", esc(signed(value, 4))],
            [
                "<strong>Cost of privacy</strong>",
                "plaintext XGBoost AUC − joint AUC",
                "not measured (no plaintext baseline)" if cost is None else esc(signed(cost, 4)),
            ],
        ],
        numeric=(2,),
    )
    ev = summary.evaluation
    n_bad = int(sum(ev.y_true))
    sample = (
        f"<p><strong>Evaluated on:</strong> {esc(ev.dataset)}: {thousands(len(ev.y_true))} customers, "
        f"{thousands(n_bad)} defaulted ({esc(percent(n_bad / len(ev.y_true)))})"
        + (f"; models trained on {thousands(ev.n_train)} customers" if ev.n_train is not None else "")
        + ".</p>"
    )
    html = sample + table + deltas + explain(
        "AUC is the chance that a random defaulter scores riskier than a random non-defaulter (0.5 = coin "
        "toss, 1 = perfect); Gini = 2·AUC − 1; KS is the largest gap between the score distributions of "
        "defaulters and non-defaulters. The value of partner data is what the partnership adds; the cost "
        "of privacy is what the privacy protections take away against pooling the raw data.",
        "The plaintext baseline pools both institutions' raw rows, which the joint job never does: it is "
        "a yardstick that exists only where both tables sit on one machine (as in a demonstration), trained "
        "on the same rows and features. All metrics are computed by misuan from the models' predictions "
        "for customers not used in training.",
    )
    return section("models", "4. Model comparison", html)


def _roc_figure(results: list[ModelResult]) -> str:
    series = []
    for r in results:
        color, dash, width = MODEL_STYLE.get(r.key, OTHER_MODEL_STYLE)
        series.append(svg.Series(f"{r.name} (AUC {r.auc:.3f})", r.roc.fpr, r.roc.tpr, color, dash, width))
    chart = svg.line_chart(
        series,
        title="ROC curves",
        x_label="false positive rate (share of non-defaulters flagged)",
        y_label="true positive rate (share of defaulters caught)",
        diagonal=True,
    )
    return (
        f'<figure id="roc">{chart}<figcaption><strong>ROC curves.</strong> For every cut-off, the share of '
        "defaulters caught against the share of good customers wrongly flagged. Higher and further left is "
        "better; the dashed diagonal is a random score.</figcaption></figure>"
    )


def _ks_figure(summary: Summary, joint: ModelResult) -> str:
    k = joint.ks_curve
    n = len(summary.evaluation.y_true)
    # x: share of all customers with a score at or above the threshold (riskiest first)
    n_bad = sum(summary.evaluation.y_true)
    population = (k.cum_bad * n_bad + k.cum_good * (n - n_bad)) / n
    x_at = float(population[k.argmax])
    chart = svg.line_chart(
        [
            svg.Series("defaulters (cumulative share)", population, k.cum_bad, "#c0392b"),
            svg.Series("non-defaulters (cumulative share)", population, k.cum_good, "#1f5fa8"),
        ],
        title="KS plot of the joint model",
        x_label="share of customers, riskiest score first",
        y_label="cumulative share of the class",
        marks=[(x_at, float(k.cum_good[k.argmax]), float(k.cum_bad[k.argmax]), f"KS = {k.ks:.3f}")],
    )
    caption = (
        f"Largest gap KS = {k.ks:.3f} at predicted PD ≥ {k.ks_threshold:.3f}: flagging the riskiest "
        f"{percent(x_at)} of customers catches {percent(float(k.cum_bad[k.argmax]))} of defaulters and "
        f"{percent(float(k.cum_good[k.argmax]))} of non-defaulters."
    )
    return f'<figure id="ks">{chart}<figcaption><strong>KS plot (joint model).</strong> {esc(caption)}</figcaption></figure>'


def curves_section(summary: Summary, results: list[ModelResult], joint: ModelResult) -> str:
    return section(
        "curves", "5. ROC and KS curves", f'<div class="grid2">{_roc_figure(results)}{_ks_figure(summary, joint)}</div>'
    )


def outcome_histograms(values: np.ndarray, y: np.ndarray, edges: np.ndarray) -> list[tuple[str, np.ndarray, str]]:
    """Histograms of ``values`` over ``edges`` for the non-defaulters and the defaulters, each as shares
    of its class (the groups :func:`svg.histogram` draws)."""
    groups = []
    for cls, name, color in ((0, "non-defaulters", "#1f5fa8"), (1, "defaulters", "#c0392b")):
        counts, _ = np.histogram(values[y == cls], bins=edges)
        groups.append((f"{name} (n = {int(np.sum(y == cls)):,})", counts / max(counts.sum(), 1), color))
    return groups


def score_section(summary: Summary) -> str:
    ev = summary.evaluation
    y = np.asarray(ev.y_true, dtype=np.int8)
    p = np.asarray(ev.scores["joint"], dtype=np.float64)
    # np.min/np.max, not ndarray.min/max: numpy 2.5's stubs give the methods no zero-argument overload
    p_min, p_max = float(np.min(p)), float(np.max(p))
    lo, hi = (0.0, 1.0) if p_min >= 0 and p_max <= 1 else (p_min, p_max)
    edges = np.linspace(lo, hi, 26)
    chart = svg.histogram(
        edges,
        outcome_histograms(p, y, edges),
        title="Predicted PD by actual outcome",
        x_label="predicted probability of default (joint model)",
        y_label="share of the class",
    )
    figure = (
        f'<figure id="score-histogram">{chart}<figcaption><strong>Score distribution.</strong> Where the joint '
        "model puts customers who did and did not default; each colour sums to 100 %. Little overlap means "
        "good separation.</figcaption></figure>"
    )
    # the classic gains table: customers in ten equal bands by score, riskiest first
    order = np.argsort(-p, kind="mergesort")
    bands = np.array_split(order, 10)
    caught = 0
    rows = []
    for i, band in enumerate(bands, 1):
        if band.size == 0:
            continue
        bad = int(y[band].sum())
        caught += bad
        rows.append(
            [
                str(i),
                f"{float(np.min(p[band])):.3f}–{float(np.max(p[band])):.3f}",
                thousands(int(band.size)),
                thousands(bad),
                esc(percent(bad / band.size)),
                esc(percent(caught / max(int(y.sum()), 1))),
            ]
        )
    gains = (
        '<div><h3 class="tight">Default rate by score band (joint model)</h3>'
        + html_table(
            ["Band", "Predicted PD", "Customers", "Defaulters", "Default rate", "Share of defaulters so far"],
            rows,
            css="gains",
            numeric=(0, 1, 2, 3, 4, 5),
        )
        + '<p class="note">Ten equal bands of hold-out customers, riskiest first. A good model puts most '
        "defaulters in the first bands.</p></div>"
    )
    return section("scores", "6. Score distribution", f'<div class="grid2">{figure}{gains}</div>')
