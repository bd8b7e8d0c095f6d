from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest

from misuan.errors import ConfigError, DataError, MalformedMessageError
from misuan.net.memory import MemoryNetwork
from misuan.protocols.describe import SharedSummaries, describe_columns, joint_describe
from misuan.protocols.simulation import run_parties


def _frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    n = 200
    income = rng.normal(5000, 1000, n)
    income[:20] = np.nan
    bank = pd.DataFrame(
        {"income": income, "age": rng.integers(18, 80, n).astype(float), "secret": rng.normal(0, 1, n)}
    )
    partner = pd.DataFrame({"spend": rng.exponential(100, n), "sparse": [1.0, 2.0] + [np.nan] * (n - 2)})
    return bank, partner


def test_local_summaries_match_pandas_and_small_columns_are_withheld() -> None:
    bank, partner = _frames()
    s = describe_columns(bank)["income"]
    assert s.missing_rate == pytest.approx(0.1)
    assert s.mean == pytest.approx(bank["income"].mean()) and s.std == pytest.approx(bank["income"].std())
    assert s.quantiles["q0.5"] == pytest.approx(bank["income"].median())
    sparse = describe_columns(partner)["sparse"]
    assert (
        sparse.missing_rate == pytest.approx(0.99)
        and math.isnan(sparse.mean)
        and math.isnan(sparse.quantiles["q0.25"])
    )
    json.dumps(sparse.to_dict())


def test_only_requested_columns_are_sent_and_recorded() -> None:
    bank, partner = _frames()
    ch = MemoryNetwork(["bank", "partner"]).channels(timeout_s=20)
    ch["partner"].transcript = []
    out = run_parties(
        ch,
        {
            "bank": lambda c: joint_describe(c, "partner", bank, share=["income", "age"]),
            "partner": lambda c: joint_describe(c, "bank", partner, share="all"),
        },
    )
    assert sorted(out["partner"].peer) == ["age", "income"] and "secret" not in out["partner"].peer
    assert out["partner"].peer["income"] == out["bank"].own["income"]
    assert sorted(out["bank"].peer) == ["sparse", "spend"]
    ((_, step, msg),) = ch["partner"].transcript  # type: ignore[misc]
    assert step == "describe" and msg.columns == ["income", "age"] and msg.quantiles.shape == (2, 5)
    for party in ("bank", "partner"):
        whats = sorted((d.discloser, d.what, d.form) for d in ch[party].recorder.entries)  # type: ignore[attr-defined]
        assert whats == [
            ("bank", "summary statistics of age", "aggregate"),
            ("bank", "summary statistics of income", "aggregate"),
            ("partner", "summary statistics of sparse", "aggregate"),
            ("partner", "summary statistics of spend", "aggregate"),
        ]


def test_nothing_shared_by_default_and_unknown_column_refused() -> None:
    bank, partner = _frames()
    ch = MemoryNetwork(["bank", "partner"]).channels(timeout_s=20)
    out = run_parties(
        ch,
        {
            "bank": lambda c: joint_describe(c, "partner", bank),
            "partner": lambda c: joint_describe(c, "bank", partner),
        },
    )
    assert out["bank"].peer == {} and out["partner"].peer == {}
    assert ch["bank"].recorder.entries == []  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="share lists"):
        joint_describe(MemoryNetwork(["a", "b"]).channel("a"), "b", bank, share=["nope"])


def _good(k: int = 1) -> SharedSummaries:
    return SharedSummaries(
        200,
        [f"c{i}" for i in range(k)],
        np.array([0.5]),
        np.zeros(k),
        np.zeros(k),
        np.ones(k),
        np.zeros((k, 1)),
    )


@pytest.mark.parametrize(
    ("bad", "error", "match"),
    [
        (dataclasses.replace(_good(), n_rows=199), DataError, "intersection"),
        (dataclasses.replace(_good(), levels=np.array([0.5, 0.2])), MalformedMessageError, "levels"),
        (dataclasses.replace(_good(), levels=np.array([1.5])), MalformedMessageError, "levels"),
        (dataclasses.replace(_good(), std=np.array([-1.0])), MalformedMessageError, "negative"),
        (dataclasses.replace(_good(), missing_rate=np.array([2.0])), MalformedMessageError, "missing rate"),
        (dataclasses.replace(_good(), mean=np.zeros(2)), MalformedMessageError, "mean"),
        (dataclasses.replace(_good(), quantiles=np.zeros((1, 2))), MalformedMessageError, "quantiles"),
        (dataclasses.replace(_good(2), columns=["a", "a"]), MalformedMessageError, "duplicates"),
    ],
)
def test_malformed_summaries_refused(bad: SharedSummaries, error: type, match: str) -> None:
    bank, _ = _frames()
    ch = MemoryNetwork(["bank", "partner"]).channels(timeout_s=20)

    def fake(c: object) -> None:
        ch["partner"].send("bank", "describe", bad)
        ch["partner"].recv("bank", "describe")

    with pytest.raises(error, match=match):
        run_parties(ch, {"bank": lambda c: joint_describe(c, "partner", bank), "partner": fake})
