from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from misuan.errors import DataError
from misuan.ml import metrics
from misuan.ml.metrics import ks_curve, ks_statistic, roc_auc, roc_curve


def _cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(7)
    n = 5000
    y = (rng.random(n) < 0.22).astype(int)
    continuous = 1 / (1 + np.exp(-(rng.normal(size=n) + 1.2 * y)))
    tied = np.round(continuous, 1)  # many ties
    coarse = rng.integers(0, 3, size=n).astype(float)  # three distinct scores only
    y_small = np.array([0, 1, 1, 0, 1, 0, 0, 0])
    p_small = np.array([0.1, 0.9, 0.4, 0.4, 0.35, 0.8, 0.2, 0.1])
    return [
        ("continuous", y, continuous),
        ("tied", y, tied),
        ("coarse", y, coarse),
        ("small", y_small, p_small),
        ("perfect", np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9])),
        ("inverted", np.array([1, 1, 0, 0]), np.array([0.1, 0.2, 0.8, 0.9])),
        ("all tied", np.array([0, 1, 0, 1, 1]), np.full(5, 0.3)),
    ]


@pytest.mark.parametrize(("name", "y", "p"), _cases(), ids=[c[0] for c in _cases()])
def test_roc_curve_matches_sklearn(name: str, y: np.ndarray, p: np.ndarray) -> None:
    fpr, tpr, thr = skm.roc_curve(y, p, drop_intermediate=False)
    c = roc_curve(y, p)
    np.testing.assert_allclose(c.fpr, fpr)
    np.testing.assert_allclose(c.tpr, tpr)
    assert np.isinf(c.thresholds[0]) and np.isinf(thr[0])
    np.testing.assert_allclose(c.thresholds[1:], thr[1:])


@pytest.mark.parametrize(("name", "y", "p"), _cases(), ids=[c[0] for c in _cases()])
def test_roc_auc_matches_sklearn(name: str, y: np.ndarray, p: np.ndarray) -> None:
    assert roc_auc(y, p) == pytest.approx(skm.roc_auc_score(y, p), abs=1e-12)


@pytest.mark.parametrize(("name", "y", "p"), _cases(), ids=[c[0] for c in _cases()])
def test_ks_matches_scipy_two_sample_and_roc_gap(name: str, y: np.ndarray, p: np.ndarray) -> None:
    expected = stats.ks_2samp(p[y == 1], p[y == 0]).statistic
    assert ks_statistic(y, p) == pytest.approx(expected, abs=1e-12)
    fpr, tpr, thr = skm.roc_curve(y, p, drop_intermediate=False)
    k = ks_curve(y, p)
    assert k.ks == pytest.approx(np.max(np.abs(tpr - fpr)), abs=1e-12)
    assert k.ks == pytest.approx(abs(k.cum_bad[k.argmax] - k.cum_good[k.argmax]))
    assert k.cum_bad[0] == 0 and k.cum_bad[-1] == 1 and k.cum_good[-1] == 1
    assert np.all(np.diff(k.cum_bad) >= 0) and np.all(np.diff(k.cum_good) >= 0)


def test_known_values() -> None:
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert roc_auc([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9]) == 0.0
    assert roc_auc([0, 1], [0.5, 0.5]) == 0.5
    assert ks_statistic([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    k = ks_curve([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])
    assert k.ks_threshold == 0.8  # all bads are at or above 0.8, no good is
    assert roc_auc(np.array([True, False, True]), [0.9, 0.1, 0.8]) == 1.0  # boolean labels


@pytest.mark.parametrize(
    ("y", "p", "match"),
    [
        ([0, 1, 2], [0.1, 0.2, 0.3], "0 \\(good\\) or 1"),
        ([0, 0, 0], [0.1, 0.2, 0.3], "both classes"),
        ([0, 1], [0.1, float("nan")], "finite"),
        ([0, 1, 1], [0.1, 0.2], "equal length"),
    ],
)
def test_rejects_bad_input(y: list[int], p: list[float], match: str) -> None:
    with pytest.raises(DataError, match=match):
        roc_auc(y, p)


def test_does_not_import_sklearn_or_scipy() -> None:
    tree = ast.parse(Path(metrics.__file__).read_text(encoding="utf-8"))
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [m for m in names if m.split(".")[0] in {"sklearn", "scipy"}]


def test_fast_on_a_million_scores() -> None:
    rng = np.random.default_rng(0)
    y = rng.random(1_000_000) < 0.2
    p = rng.random(1_000_000) + 0.1 * y
    assert 0.5 < roc_auc(y, p) < 0.7
