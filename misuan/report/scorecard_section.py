"""The report's section on the federated scorecard (vertical LR): the points distribution and score
bands of the hold-out, the bank's points table, and a few held-out customers scored jointly with
their reasons."""

from __future__ import annotations

import math

import numpy as np

from misuan.ml.scorecard import scaling
from misuan.report import svg
from misuan.report.markup import esc, html_table, section
from misuan.report.performance import outcome_histograms
from misuan.report.schema import Summary

__all__ = ["scorecard_section"]


def scorecard_section(summary: Summary) -> str:
    """The section, or "" for a summary without ``scorecard``."""
    sc = summary.scorecard
    if sc is None:
        return ""
    intro = (
        f"<p>Logistic regression on the bins of every party, trained without any party seeing another's rows "
        f"({sc.iterations} iterations); hold-out AUC <strong>{sc.auc:.4f}</strong>, KS <strong>{sc.ks:.4f}</strong>. "
        f"Points: {sc.base_score:g} at good:bad odds of {sc.base_odds:g}:1, {sc.pdo:g} points double the odds; "
        "a customer's score is the sum of the points of its bins over every feature, a partner's "
        "points held and added by that partner. Reasons are the features whose points fall furthest "
        "below their best bin (at most four), over every party's features; a protected attribute (sex, marital "
        "status, age) is never given as a reason, the next one takes its place.</p>"
    )
    woe = any(r.woe is not None for r in sc.rows)  # a scorecard fitted on WOE encoding shows each bin's WOE
    table = html_table(["Party", "Feature", "Bin", "Rows", "Default rate", *(["WOE"] if woe else []), "Points"],
                       [[esc(r.party), esc(r.feature), esc(r.bin or "(not shared)"),
                         "-" if r.count is None else f"{r.count:,}", "-" if r.event_rate is None else f"{r.event_rate:.2%}",
                         *([("-" if r.woe is None else f"{r.woe:+.3f}")] if woe else []),
                         "held by the partner" if r.points is None else f"{r.points:.1f}"] for r in sc.rows],
                       numeric=(3, 4, 5, 6) if woe else (3, 4, 5))
    if any(r.party != "bank" for r in sc.rows):
        table = ("<p>A partner's rows are what it chose to share of its part (the step's <code>partner_table</code>); "
                 "its points stay with it unless it shares them.</p>" + table)
    examples = html_table(
        ["Score", "PD", "Principal reasons"],
        [[f"{e.score:.0f}", f"{e.pd:.2%}", esc("; ".join(e.reasons) or "-")] for e in sc.examples], numeric=(0, 1),
    )
    held_out = _held_out_scores(summary)
    figures = "" if held_out is None else _distribution(*held_out) + _bands(*held_out)
    return section("scorecard", "11. The federated scorecard",
                   intro + figures + table + "<h3>Held-out customers</h3>" + examples)


def _held_out_scores(summary: Summary) -> tuple[np.ndarray, np.ndarray] | None:
    """The hold-out's points (from the scorecard's PDs in the evaluation) and outcomes."""
    sc, ev = summary.scorecard, summary.evaluation
    if sc is None or "scorecard" not in ev.scores:
        return None
    pd_ = np.clip(np.asarray(ev.scores["scorecard"], dtype=np.float64), 1e-12, 1 - 1e-12)
    factor, offset = scaling(sc.pdo, sc.base_score, sc.base_odds)
    return offset - factor * (np.log(pd_) - np.log1p(-pd_)), np.asarray(ev.y_true)


def _distribution(score: np.ndarray, y: np.ndarray) -> str:
    """The points distribution of the hold-out, defaulters and the others as shares of their class."""
    edges = np.linspace(math.floor(float(np.min(score)) / 10) * 10, math.ceil(float(np.max(score)) / 10) * 10 + 10, 31)
    chart = svg.histogram(edges, outcome_histograms(score, y, edges), title="Scorecard points by actual outcome", x_label="score (points)",
                          y_label="share of the class")
    return (f'<figure id="scorecard-points">{chart}<figcaption><strong>Points distribution.</strong> The hold-out '
            "customers' scores, defaulters and the others each summing to 100 %: defaulters should sit at the "
            "low end.</figcaption></figure>")


def _bands(score: np.ndarray, y: np.ndarray) -> str:
    """Score bands of the hold-out with their default rates."""
    low, high = float(np.min(score)), float(np.max(score))
    edges = np.arange(math.floor(low / 50) * 50, high + 50, 50)
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = (score >= lo) & (score < hi)
        if inside.any():
            rows.append([f"{lo:.0f}-{hi:.0f}", f"{int(inside.sum()):,}", f"{y[inside].mean():.1%}"])
    return "<h3>Score bands on the hold-out</h3>" + html_table(["Score", "Customers", "Default rate"], rows, numeric=(1, 2))
