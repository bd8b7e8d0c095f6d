"""A credit scorecard from logistic regression on WOE: points per bin, the score, reason codes.

Scaling (the usual one; REFERENCES.md): ``factor = pdo / ln 2``, ``offset = base_score - factor *
ln(base_odds)``, and a score of ``offset + factor * ln(odds)`` with ``odds`` the good:bad odds, so
``pdo`` points double the odds and ``base_score`` stands for ``base_odds``. With the model
``logit P(bad) = b0 + sum_j b_j * WOE_j``, the points of bin ``i`` of feature ``j`` are
``-(b_j * WOE_ij + b0 / n) * factor + offset / n`` (``n`` features), and a customer's score is the
sum of the points of the bins it falls in: exactly ``offset - factor * logit(PD)``.

Reason codes (PMML's ``pointsBelow`` with the ``max`` baseline): per feature, the points a customer
falls short of the feature's best bin; the features with the largest shortfalls, zeros dropped,
at most four (the number US adverse-action notices expect).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from misuan.errors import ConfigError

__all__ = ["Scorecard", "bin_labels", "scaling", "scorecard_from_bin_lr", "scorecard_from_woe_lr"]

MAX_REASONS = 4


def bin_labels(edges: np.ndarray) -> list[str]:
    """``(-inf, c0]``, ``(c0, c1]``, ..., and ``missing``, for cut points ``edges`` (bins as
    :func:`misuan.ml.horizontal_binning.bin_values` assigns them; infinite cuts are empty bins)."""
    cuts = [c for c in edges.tolist() if math.isfinite(c)]
    bounds = [-math.inf, *cuts, math.inf]
    labels = [f"({a:g}, {b:g}]" if math.isfinite(b) else f"({a:g}, inf)" for a, b in zip(bounds, bounds[1:], strict=False)]
    labels += ["(empty)"] * (len(edges) + 1 - len(labels))
    return [*labels, "missing"]


@dataclasses.dataclass
class Scorecard:
    """Points per (feature, bin); ``score`` and ``reasons`` take binned rows (one bin index per feature)."""

    features: list[str]
    labels: list[list[str]]  # per feature, one label per bin (the last: missing values)
    points: np.ndarray  # (features, bins)
    pdo: float
    base_score: float
    base_odds: float

    def score(self, bins: np.ndarray) -> np.ndarray:
        return np.take_along_axis(self.points.T, bins, axis=0).sum(axis=1) if bins.size else np.zeros(bins.shape[0])

    def reasons(self, bins: np.ndarray, k: int = MAX_REASONS) -> list[list[str]]:
        """Per row, the features that cost it most points against their best bin, largest first."""
        earned = np.take_along_axis(self.points.T, bins, axis=0)  # (rows, features)
        shortfall = self.points.max(axis=1)[None, :] - earned
        out = []
        for row in shortfall:
            order = [j for j in np.argsort(-row, kind="stable") if row[j] > 1e-9][:k]
            out.append([self.features[j] for j in order])
        return out

    def table(self, counts: Sequence[np.ndarray] | None = None, events: Sequence[np.ndarray] | None = None,
              woe: Sequence[np.ndarray] | None = None) -> list[dict[str, object]]:
        """One row per (feature, bin): what a model validator reads. With each feature's rows per bin
        (``counts``) each row has its ``count``, and with its events per bin its ``event_rate`` (the
        owner's own figures, on the training rows; None for a bin without rows); with a WOE-encoded
        model, each bin's ``woe``."""
        rows: list[dict[str, object]] = []
        for j, f in enumerate(self.features):
            for i, lab in enumerate(self.labels[j]):
                if lab == "(empty)":
                    continue
                row: dict[str, object] = {"feature": f, "bin": lab}
                if counts is not None:
                    n = int(counts[j][i])
                    row["count"] = n
                    if events is not None:
                        row["event_rate"] = round(float(events[j][i]) / n, 4) if n else None
                if woe is not None:
                    row["woe"] = round(float(woe[j][i]), 4)
                row["points"] = round(float(self.points[j, i]), 1)
                rows.append(row)
        return rows


def scaling(pdo: float, base_score: float, base_odds: float) -> tuple[float, float]:
    """``(factor, offset)`` of the score ``offset + factor * ln(good:bad odds)``."""
    if pdo <= 0 or base_odds <= 0:
        raise ConfigError(f"pdo and base_odds must be positive (got {pdo}, {base_odds})")
    factor = pdo / math.log(2.0)
    return factor, base_score - factor * math.log(base_odds)


def scorecard_from_bin_lr(
    features: list[str], labels: list[list[str]], coef: list[np.ndarray], intercept: float, n_features: int, *,
    pdo: float = 20.0, base_score: float = 600.0, base_odds: float = 50.0,
) -> Scorecard:
    """The scorecard part of ``features`` of a logistic regression on bin indicators (one coefficient
    per bin: ``coef[j][i]`` for bin ``i`` of feature ``j``). The score's offset is spread over
    ``n_features`` features in all (every party's); the intercept over this part's features (the
    bank passes it, the partner 0, so the partner never needs it). Each party builds its own part
    with the same ``n_features`` and scaling, and a customer's score is the sum of the points of every
    part, exactly ``offset - factor * logit(PD)``. The points of bin ``i`` of feature ``j``:
    ``-(coef[j][i] + intercept / len(features)) * factor + offset / n_features``."""
    factor, offset = scaling(pdo, base_score, base_odds)
    if not (len(features) == len(labels) == len(coef)) or any(len(c) != len(lab) for c, lab in zip(coef, labels, strict=True)):
        raise ConfigError("every feature needs one label and one coefficient per bin")
    if n_features < len(features) or n_features < 1:
        raise ConfigError(f"n_features ({n_features}) counts every party's features, at least this part's {len(features)}")
    width = max((len(c) for c in coef), default=0)
    points = np.full((len(features), width), np.nan)
    for j, c in enumerate(coef):
        points[j, : len(c)] = -(np.asarray(c, dtype=np.float64) + intercept / len(features)) * factor + offset / n_features
    padded = [list(lab) + ["(empty)"] * (width - len(lab)) for lab in labels]
    return Scorecard(list(features), padded, np.nan_to_num(points, nan=-np.inf), pdo, base_score, base_odds)


def scorecard_from_woe_lr(
    features: list[str], edges: list[np.ndarray], woe: np.ndarray, coef: np.ndarray, intercept: float, *,
    pdo: float = 20.0, base_score: float = 600.0, base_odds: float = 50.0,
) -> Scorecard:
    """The scorecard of logistic regression ``coef``/``intercept`` on the WOE table ``woe``
    (``(features, bins)``, missing values in the last bin) of ``features`` cut at ``edges``."""
    factor, offset = scaling(pdo, base_score, base_odds)
    n = len(features)
    if not (woe.shape[0] == n == len(edges) == coef.size):
        raise ConfigError("the WOE table, the edges and the coefficients must cover the same features")
    points = -(coef[:, None] * woe + intercept / n) * factor + offset / n
    return Scorecard(list(features), [bin_labels(e) for e in edges], points, pdo, base_score, base_odds)
