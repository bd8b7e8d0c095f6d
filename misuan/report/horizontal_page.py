"""The horizontal demo's report: five lenders, their models alone and together, what was disclosed.

It takes the demo's summary (a plain document, ``horizontal/summary.json``) and shows per lender its
customers and default rate and the hold-out AUC of its model alone against the two federated models
(with the pooled-data reference only a demo can compute), the pooled information values, the
scorecard's weights, and what secure aggregation revealed to whom. Every text is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from misuan.report.markup import (
    PARTY_COLORS,
    byte_size,
    duration,
    esc,
    explain,
    html_table,
    percent,
    section,
    thousands,
)
from misuan.report.render import CSS
from misuan.report.svg import Bar, hbar_chart

__all__ = ["render_horizontal_page"]


def _lender_table(lenders: list[Mapping[str, Any]]) -> str:
    rows = [
        [f"<b>{esc(r['name'])}</b> <span class=muted>{esc(r['what'])}</span>", thousands(r["rows_train"] + r["rows_holdout"]),
         percent(r["bad_rate"]), f"{r['auc_alone']:.3f}", f"{r['auc_scorecard']:.3f}", f"{r['auc_boosting']:.3f}",
         f"{r['auc_boosting'] - r['auc_alone']:+.3f}", f"{r['auc_pooled_reference']:.3f}"]
        for r in lenders
    ]
    return html_table(
        ["lender", "customers", "default rate", "alone", "scorecard", "boosting", "gain", "pooled (ref.)"],
        rows, numeric=range(1, 8),
    ) + (
        "<p class=muted>Hold-out AUC on each lender's own customers. <b>alone</b>: XGBoost on the lender's rows; "
        "<b>scorecard</b>: the federated logistic regression on the pooled WOE; <b>boosting</b>: the federated trees; "
        "<b>gain</b>: boosting minus alone; <b>pooled (ref.)</b>: XGBoost on every lender's rows at once, which only "
        "this demo can fit.</p>"
    )


def _auc_chart(lenders: list[Mapping[str, Any]]) -> str:
    bars = []
    for i, r in enumerate(lenders):
        color = PARTY_COLORS[i % len(PARTY_COLORS)]
        bars.append(Bar(f"{r['name']} alone", r["auc_alone"], "#b8c0cc"))
        bars.append(Bar(f"{r['name']} federated", r["auc_boosting"], color, note=f"{r['auc_boosting'] - r['auc_alone']:+.3f}"))
    return hbar_chart(bars, title="hold-out AUC per lender, alone and federated", value_label="AUC on the lender's own hold-out customers",
                      fmt=".3f")


def _disclosure_table(summary: Mapping[str, Any]) -> str:
    rows = [[esc(r["name"]), byte_size(r["bytes_sent"]), byte_size(r["bytes_received"]), thousands(r["ledger_entries"]),
             f"<code>{esc(r['ledger_head'][:16])}…</code>"] for r in summary["lenders"]]
    rows.append([esc(summary["aggregator"]), byte_size(summary["bytes_sent"]), "—", thousands(summary["ledger_entries"]),
                 f"<code>{esc(summary['ledger_head'][:16])}…</code>"])
    return html_table(["party", "sent", "received", "ledger entries", "ledger head"], rows, numeric=(1, 2, 3))


def render_horizontal_page(summary: Mapping[str, Any]) -> str:
    """A self-contained HTML page of the horizontal demo's summary."""
    lenders = list(summary["lenders"])
    p = summary["params"]
    gains = [r["auc_boosting"] - r["auc_alone"] for r in lenders]
    better = sum(1 for g in gains if g > 0)
    models = (
        _lender_table(lenders)
        + _auc_chart(lenders)
        + explain(
            f"Each lender's own hold-out customers, scored by its model alone and by the two models the five built "
            f"together. The federated boosting model beats the lender's own for {better} of {len(lenders)} lenders "
            f"(the largest change {max(gains, key=abs):+.3f} in AUC). The federated scorecard is the explainable one: "
            "one weight per feature's WOE, the same bins for every lender.",
            "No lender's rows, counts or gradients left it: every pooled statistic came out of secure aggregation, "
            "and each party's ledger lists what it sent and learned, round by round. The pooled-XGBoost column is a "
            "reference only a demo can compute, holding all files at once.",
        )
    )
    iv = html_table(["feature", "pooled IV"], [[f"<code>{esc(t['feature'])}</code>", f"{t['iv']:.3f}"] for t in summary["iv"]],
                    numeric=(1,))
    coef = html_table(
        ["feature (its WOE)", "scorecard weight"],
        [[f"<code>{esc(f)}</code>", f"{w:+.3f}"] for f, w in sorted(summary["scorecard_coef"].items(), key=lambda t: -abs(t[1]))],
        numeric=(1,),
    ) + (f"<p class=muted>Logistic regression on the WOE of the features with pooled IV of at least "
         f"{summary['scorecard_min_iv']:g}; intercept {summary['scorecard_intercept']:+.3f}; Newton converged in "
         f"{summary['lr_iterations']} rounds. A higher WOE means fewer defaults, so the weights are negative.</p>")
    points = html_table(
        ["feature", "bin", "points"],
        [[f"<code>{esc(r['feature'])}</code>", esc(r["bin"]), f"{r['points']:.1f}"] for r in summary["scorecard_points"]],
        numeric=(2,),
    )
    lows = html_table(
        ["lender", "median score", "lowest score", "its principal reasons (points below each feature's best bin)"],
        [[esc(r["name"]), f"{r['score_median']:.0f}", f"{r['lowest_score']:.0f}", esc(", ".join(r["lowest_reasons"]) or "—")]
         for r in lenders],
        numeric=(1, 2),
    )
    coef += (
        "<h3>Points per bin</h3><p class=muted>600 points at good:bad odds of 50:1, 20 points double the odds; a "
        "customer's score is the sum of the points of its bins.</p>" + points
        + "<h3>Each lender's lowest-scoring hold-out customer</h3>" + lows
    )
    disclosed = (
        "<p>Secure aggregation (Bonawitz et al. 2017, semi-honest): each lender masks its vector with a self mask and "
        f"pairwise masks, Shamir-shares their keys with threshold {p['threshold']} of {len(lenders)}, and the aggregator "
        "only ever holds masked vectors and their sum. Revealed to the aggregator and to every lender: the pooled "
        "feature moments and fine histograms (the bins), the pooled good and bad counts per bin (WOE and IV), the "
        "pooled gradient, Hessian and loss of each Newton round, and the pooled gradient and hessian sums per node, "
        f"feature and bin of each tree level. {summary['gbdt_rounds']} aggregation rounds grew the trees.</p>"
        + _disclosure_table(summary)
    )
    body = (
        section("models", "Each lender alone, and the five together", models)
        + section("iv", "Pooled information value of each feature", iv)
        + section("scorecard", "The federated scorecard", coef)
        + section("disclosed", "What was disclosed, and to whom", disclosed)
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>misuan: five lenders, one model</title>"
        f"<style>{CSS}.muted{{color:var(--muted)}}</style></head><body><main><header>"
        "<h1>Five lenders, one model: horizontal learning over secure aggregation</h1>"
        f"<p class=sub>UCI Taiwan credit-default data (CC BY 4.0) split into {len(lenders)} lenders · "
        f"{p['n_estimators']} trees of depth {p['max_depth']}, {p['woe_bins']} WOE bins · {'separate processes, gRPC + mutual TLS' if summary['transport'] == 'processes' else 'threads'} · {duration(summary['wall_s'])} · generated {esc(summary['generated_at'])}</p></header>"
        f"{body}</main></body></html>"
    )
