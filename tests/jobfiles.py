"""Builders for job specs and datasets on disk, shared by the node, API and CLI tests."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

PARTIES3 = ("bank", "telecom", "insurer")


def write_dataset(path: Path, party: str, n: int = 40, seed: int = 0, label: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "customer_id": [f"c{i:04d}" for i in range(n)],
            "balance": rng.integers(0, 10_000, size=n),
            "score": np.round(rng.random(n), 2),
        }
    )
    if label:
        df["default_90d"] = rng.integers(0, 2, size=n)
    df.to_csv(path, index=False)
    return df


def spec_text(
    parties: Sequence[str],
    steps: str,
    job_id: str = "job-1",
    ports: Sequence[int] | None = None,
    extra_party: str = "",
) -> str:
    out = [f'version = 1\n\n[job]\nid = "{job_id}"\ntimeout_s = 20\n']
    for i, p in enumerate(parties):
        role = "label_party" if i == 0 else "feature_party"
        label = ', label_column = "default_90d"' if i == 0 else ""
        port = ports[i] if ports else 50051 + i
        out.append(
            textwrap.dedent(
                f"""
                [[party]]
                name = "{p}"
                role = "{role}"
                address = "127.0.0.1:{port}"
                dataset = {{ path = "{p}.csv", id_column = "customer_id"{label} }}
                {extra_party}
                """
            )
        )
    out.append(textwrap.dedent(steps))
    return "\n".join(out)


SUM_STEPS = """
[[step]]
kind = "secure_sum"
name = "totals"
params = { columns = ["balance"], count_rows = true }

[[step]]
kind = "secure_sum"
name = "scores"
params = { columns = ["score"], scale = 100 }
"""


def write_job(
    root: Path, parties: Sequence[str] = ("bank", "partner"), steps: str = SUM_STEPS, **kw: object
) -> Path:
    """Write datasets for ``parties`` and a spec under ``root``; returns the spec path."""
    for i, p in enumerate(parties):
        write_dataset(root / f"{p}.csv", p, seed=i, label=i == 0)
    path = root / "job.toml"
    path.write_text(spec_text(parties, steps, **kw))  # type: ignore[arg-type]
    return path


def free_ports(n: int) -> list[int]:
    """``n`` distinct free loopback ports (released before use: a rare race with other processes)."""
    import socket

    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()
