"""The label party's losses: gradients and hessians, the evaluation metric and the initial margin."""

from __future__ import annotations

import math

import numpy as np

from misuan.errors import ConfigError

__all__ = ["base_margin", "grad_hess", "metric", "sigmoid"]


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def grad_hess(objective: str, margin: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if objective == "binary:logistic":
        pr = sigmoid(margin)
        return pr - y, np.maximum(pr * (1.0 - pr), 1e-16)
    return margin - y, np.ones_like(margin)


def metric(objective: str, margin: np.ndarray, y: np.ndarray) -> float:
    """Log loss for logistic loss, RMSE for squared loss (lower is better)."""
    if objective == "binary:logistic":
        pr = np.clip(sigmoid(margin), 1e-15, 1 - 1e-15)
        return float(-np.mean(y * np.log(pr) + (1 - y) * np.log(1 - pr)))
    return float(np.sqrt(np.mean((margin - y) ** 2)))


def base_margin(objective: str, base_score: float | None, y: np.ndarray) -> float:
    """Initial margin: ``logit(base_score)`` for logistic loss, ``base_score`` for squared loss."""
    if objective == "binary:logistic":
        b = float(np.mean(y)) if base_score is None else float(base_score)
        if not 0 < b < 1:
            raise ConfigError(f"base_score must be a probability in (0, 1) for logistic loss, got {b}")
        return math.log(b / (1 - b))
    return float(np.mean(y)) if base_score is None else float(base_score)
