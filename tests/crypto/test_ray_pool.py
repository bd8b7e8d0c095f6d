"""A party's worker pools on a (one-machine) Ray cluster give what local worker processes give."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from sklearn.datasets import make_classification

from misuan.crypto.he import generate_keypair
from misuan.crypto.pool import HEWorker, WorkerPool, compute_target, decrypt_batch, encrypt_batch, use_compute
from misuan.errors import ConfigError, MalformedMessageError
from misuan.net.local import run_local
from misuan.protocols import secureboost as sb
from misuan.protocols.secureboost.histogram import HistogramWorker

ray = pytest.importorskip("ray")


@contextmanager
def on_ray() -> Iterator[None]:
    use_compute("ray:local")
    try:
        yield
    finally:
        use_compute("local")
        ray.shutdown()


@pytest.mark.own_process  # a Ray driver can end its process (tests/conftest.py)
def test_he_pools_and_secureboost_on_ray_actors_equal_local_workers() -> None:
    """One cluster for both (starting one costs seconds): HE batches and errors on actors, then a
    SecureBoost fit on Ray equal to the local workers' fit."""
    X, y = make_classification(n_samples=2400, n_features=8, n_informative=5, random_state=4)
    local = _train(X, y.astype(float))
    with on_ray():
        _he_batches_and_errors()
        assert _train(X, y.astype(float)) == local


def _he_batches_and_errors() -> None:
    pub, priv = generate_keypair("ou", 2048)
    pool = WorkerPool(HEWorker, (dict(priv.to_wire()), True, 8), workers=2)
    try:
        assert pool.workers == 2 and compute_target() == "ray:local"
        values = list(range(1000, 1300))
        raw = encrypt_batch(pool, pub, values)
        assert decrypt_batch(pool, pub, raw) == values
        assert pool.map("decrypt", [(raw[i * pub.ciphertext_bytes:(i + 1) * pub.ciphertext_bytes],) for i in range(5)]) == \
            [[v] for v in values[:5]]  # results in task order
    finally:
        pool.close()
    bins = np.zeros((10, 2), dtype=np.uint8)
    hist = WorkerPool(HistogramWorker, (dict(pub.to_wire()), bins.tobytes(), bins.shape, [3, 3]), workers=2)
    try:  # a handler's own error comes back as the same misuan error
        with pytest.raises(MalformedMessageError, match="bytes of ciphertexts for 10 rows"):
            hist.broadcast("load", np.arange(10), b"short", 30, 1)
    finally:
        hist.close()


def _train(X: np.ndarray, y: np.ndarray) -> dict:
    p = sb.SecureBoostParams(n_estimators=2, max_depth=3, max_bin=16, base_score=0.5, n_jobs=2, histograms="he")
    keys = generate_keypair("ou", 2048)
    out = run_local({
        "bank": lambda c: sb.train_label_party(c, X[:, :4], y, ["partner"], p, keys=keys),
        "partner": lambda c: sb.train_feature_party(c, X[:, 4:], "bank", p),
    })
    models = {q: o.result.model for q, o in out.items()}
    models["bank"] = {k: v for k, v in models["bank"].items() if k != "params"}
    return models


def test_compute_targets_are_checked() -> None:
    for bad in ("ray:", "spark://x", ""):
        with pytest.raises(ConfigError, match="compute must be"):
            use_compute(bad)
    assert compute_target() == "local"
