"""The report's section on the federated scorecard (vertical LR): the bank's points table and a few
held-out customers scored jointly with their reasons."""

from __future__ import annotations

import math

import numpy as np

from misuan.report.markup import esc, html_table, section
from misuan.report.schema import Summary

__all__ = ["scorecard_section"]


def scorecard_section(summary: Summary) -> str:
    """The section, or "" for a summary without ``scorecard``."""
    sc = summary.scorecard
    if sc is None:
        return ""
    intro = (
        f"<p>Logistic regression on both parties' bins, trained without either seeing the other's rows "
        f"({sc.iterations} iterations); hold-out AUC <strong>{sc.auc:.4f}</strong>, KS <strong>{sc.ks:.4f}</strong>. "
        f"Points: {sc.base_score:g} at good:bad odds of {sc.base_odds:g}:1, {sc.pdo:g} points double the odds; "
        "a customer's score is the sum of the points of its bins over every feature, the partner's "
        "points held and added by the partner. Reasons are the features whose points fall furthest "
        "below their best bin (at most four), over both parties' features.</p>"
    )
    table = html_table(["Feature (bank)", "Bin", "Points"],
                       [[esc(r.feature), esc(r.bin), f"{r.points:.1f}"] for r in sc.rows], numeric=(2,))
    examples = html_table(
        ["Score", "PD", "Principal reasons"],
        [[f"{e.score:.0f}", f"{e.pd:.2%}", esc("; ".join(e.reasons) or "-")] for e in sc.examples], numeric=(0, 1),
    )
    bands = _bands(summary)
    return section("scorecard", "11. The federated scorecard",
                   intro + bands + table + "<h3>Held-out customers</h3>" + examples)


def _bands(summary: Summary) -> str:
    """Score bands of the hold-out (from the scorecard's PDs in the evaluation) with their default rates."""
    sc, ev = summary.scorecard, summary.evaluation
    if sc is None or "scorecard" not in ev.scores:
        return ""
    pd_ = np.clip(np.asarray(ev.scores["scorecard"], dtype=np.float64), 1e-12, 1 - 1e-12)
    factor = sc.pdo / math.log(2.0)
    offset = sc.base_score - factor * math.log(sc.base_odds)
    score = offset - factor * (np.log(pd_) - np.log1p(-pd_))
    y = np.asarray(ev.y_true)
    low, high = float(np.min(score)), float(np.max(score))
    edges = np.arange(math.floor(low / 50) * 50, high + 50, 50)
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = (score >= lo) & (score < hi)
        if inside.any():
            rows.append([f"{lo:.0f}-{hi:.0f}", f"{int(inside.sum()):,}", f"{y[inside].mean():.1%}"])
    return "<h3>Score bands on the hold-out</h3>" + html_table(["Score", "Customers", "Default rate"], rows, numeric=(1, 2))
