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


def test_a_bin_indicator_scorecard_in_two_parts_reproduces_the_models_score_exactly() -> None:
    from misuan.ml.scorecard import scaling, scorecard_from_bin_lr

    rng = np.random.default_rng(3)
    n_bins = [3, 4, 2, 5]
    coef = [rng.normal(size=b) for b in n_bins]
    intercept = -1.7
    bins = np.stack([rng.integers(0, b, 200) for b in n_bins], axis=1)
    labels = [[f"b{i}" for i in range(b)] for b in n_bins]
    names = ["bank_a", "bank_b", "partner_c", "partner_d"]
    bank = scorecard_from_bin_lr(names[:2], labels[:2], coef[:2], intercept, 4)
    partner = scorecard_from_bin_lr(names[2:], labels[2:], coef[2:], 0.0, 4)  # the intercept is the bank's
    logit = intercept + sum(coef[f][bins[:, f]] for f in range(4))
    factor, offset = scaling(20.0, 600.0, 50.0)
    total = bank.score(bins[:, :2]) + partner.score(bins[:, 2:])
    assert np.allclose(total, offset - factor * logit, rtol=0, atol=1e-9)
    # reasons: the bank's own shortfalls, worst first; a bin at its feature's best costs nothing
    best = np.array([int(np.argmax(bank.points[0, :3])), int(np.argmax(bank.points[1, :4]))])
    assert bank.reasons(best[None, :]) == [[]]
    assert [row["bin"] for row in bank.table()][:3] == ["b0", "b1", "b2"]
