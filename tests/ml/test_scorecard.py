"""Scorecard points from LR on WOE: the score is the model's log-odds, scaled; reason codes by shortfall."""

from __future__ import annotations

import math

import numpy as np

from misuan.ml.scorecard import bin_labels, scorecard_from_woe_lr


def test_points_add_up_to_the_scaled_log_odds_and_reasons_follow_the_shortfall() -> None:
    rng = np.random.default_rng(0)
    edges = [np.array([1.0, 2.0, np.inf]), np.array([10.0, 20.0, 30.0])]
    woe = rng.normal(0, 0.5, (2, 5))
    coef, intercept = np.array([-0.9, -0.4]), -1.2
    card = scorecard_from_woe_lr(["util", "age"], edges, woe, coef, intercept, pdo=20, base_score=600, base_odds=50)
    bins = rng.integers(0, 5, (50, 2))
    logit = intercept + coef[0] * woe[0, bins[:, 0]] + coef[1] * woe[1, bins[:, 1]]
    factor = 20 / math.log(2)
    assert np.allclose(card.score(bins), 600 - factor * math.log(50) - factor * logit)  # good:bad odds = exp(-logit)
    # 20 points double the odds
    assert np.allclose(np.diff(card.score(bins[:2])), -factor * np.diff(logit[:2]))
    best = bins.copy()
    best[:, 0] = np.argmax(card.points[0])
    best[:, 1] = np.argmax(card.points[1])
    assert all(r == [] for r in card.reasons(best))  # nothing short of the best bins: no reason
    worst_util = bins.copy()
    worst_util[:, 0] = np.argmin(card.points[0])
    worst_util[:, 1] = np.argmax(card.points[1])
    assert all(r == ["util"] for r in card.reasons(worst_util))
    assert bin_labels(edges[0]) == ["(-inf, 1]", "(1, 2]", "(2, inf)", "(empty)", "missing"]
    assert {row["bin"] for row in card.table()} >= {"(-inf, 1]", "missing", "(30, inf)"}
