"""A whole job with its worker pools and tasks on a (one-machine) Ray cluster gives the outputs of local processes."""

from __future__ import annotations

import concurrent.futures
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import misuan.api as ms
from misuan.crypto.pool import use_compute
from misuan.crypto.ray_pool import RayTasks
from misuan.protocols.woe import he_batch

ray = pytest.importorskip("ray")

ROWS = 3_000  # with WOE's pool thresholds lowered below (PSI's workers are set in the spec)


def _spec(tmp_path: Path) -> Path:
    rng = np.random.default_rng(8)
    X = rng.normal(size=(ROWS, 6))
    y = (rng.random(ROWS) < 1 / (1 + np.exp(-(X @ [0.8, -0.5, 0.3, 0.6, -0.4, 0.2] - 1.2)))).astype(int)
    ids = [f"K{i:06d}" for i in range(ROWS)]
    pd.DataFrame({"id": ids, "y": y, **{f"b{j}": X[:, j] for j in range(3)}}).to_csv(tmp_path / "bank.csv", index=False)
    pd.DataFrame({"id": ids[::-1], **{f"p{j}": X[::-1, 3 + j] for j in range(3)}}).to_csv(tmp_path / "partner.csv", index=False)
    path = tmp_path / "job.toml"
    path.write_text(textwrap.dedent("""\
        version = 1
        [job]
        id = "ray-job"
        [[party]]
        name = "bank"
        role = "label_party"
        address = "127.0.0.1:7001"
        dataset = { path = "bank.csv", id_column = "id", label_column = "y" }
        [[party]]
        name = "partner"
        role = "feature_party"
        address = "127.0.0.1:7002"
        dataset = { path = "partner.csv", id_column = "id" }
        [[step]]
        kind = "psi"
        params = { reveal = "both", protocol = "ecdh", workers = 2 }
        [[step]]
        kind = "woe"
        params = { n_bins = 5, method = "quantile", workers = 2 }
        [[step]]
        kind = "secureboost"
        params = { n_estimators = 2, max_depth = 3, histograms = "he", n_jobs = 2, test_fraction = 0.2 }
        """))
    return path


def _outputs(spec: Path, workdir: Path) -> dict[str, Any]:
    result = ms.simulate(spec, workdir=workdir)

    def stable(x: Any) -> Any:  # without timings; floats to 10 digits (PSI's row order is new in every run: fresh
        # blinding keys), so the label party's own float sums add in another order
        if isinstance(x, dict):
            return {k: stable(v) for k, v in x.items() if k not in ("seconds", "history", "timings", "x25519")}
        if isinstance(x, float):
            return float(f"{x:.10g}")
        return [stable(v) for v in x] if isinstance(x, list) else x
    return {p: stable(result.outputs(p)) for p in ("bank", "partner")}


@pytest.mark.own_process  # a Ray driver can end its process (tests/conftest.py)
def test_a_job_on_a_ray_cluster_equals_the_local_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _spec(tmp_path)
    monkeypatch.setattr(he_batch, "POOL_MIN_MULTIPLICATIONS", 0)  # WOE's bin sums on workers even for few rows
    monkeypatch.setattr(he_batch, "POOL_MIN_ENCRYPTIONS", 0)  # and its encryptions
    local = _outputs(spec, tmp_path / "local")
    names: list[str] = []
    submit = RayTasks.submit

    def counted(self: RayTasks, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        names.append(fn.__name__)
        return submit(self, fn, *args, **kwargs)

    def no_local_processes(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a local process pool was started while compute is a Ray cluster")

    monkeypatch.setattr(RayTasks, "submit", counted)
    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", no_local_processes)
    use_compute("ray:local")
    try:
        on_ray = _outputs(spec, tmp_path / "ray")
    finally:
        use_compute("local")
        ray.shutdown()
    assert on_ray == local
    assert local["bank"]["psi"]["size"] == ROWS and local["bank"]["woe"]["features"]
    # the protocols' tasks ran on the cluster (WOE's encryptions and bin sums, ECDH-PSI's hashing), and the
    # HE pools of SecureBoost as actors
    assert {"_encrypt_task", "_chunk_task", "hash_task"} <= set(names), set(names)
