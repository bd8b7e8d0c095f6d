from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest

from misuan.errors import ConfigError, DataError, MalformedMessageError
from misuan.net.channel import Channel
from misuan.net.local import run_local
from misuan.net.memory import MemoryNetwork
from misuan.protocols.describe import (
    DescribeParams,
    DescribeParty,
    SharedSummaries,
    describe_columns,
    joint_describe,
)


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
    ch = run_local(
        {
            "bank": lambda c: joint_describe(c, "partner", bank, DescribeParams(share=("income", "age"))),
            "partner": lambda c: joint_describe(c, "bank", partner, DescribeParams(share="all")),
        },
        timeout_s=20,
        transcripts=True,
    )
    out = {p: o.result for p, o in ch.items()}
    assert sorted(out["partner"].peer) == ["age", "income"] and "secret" not in out["partner"].peer
    assert out["partner"].peer["income"] == out["bank"].own["income"]
    assert sorted(out["bank"].peer) == ["sparse", "spend"]
    ((_, step, msg),) = ch["partner"].transcript  # type: ignore[misc]
    assert step == "describe" and msg.columns == ["income", "age"] and msg.quantiles.shape == (2, 5)
    for party in ("bank", "partner"):
        whats = sorted((d.discloser, d.detail["column"], d.what, d.form, d.shape) for d in ch[party].disclosures)
        assert whats == [
            ("bank", "age", "summary statistics of a column", "aggregate", (8,)),
            ("bank", "income", "summary statistics of a column", "aggregate", (8,)),
            ("partner", "sparse", "summary statistics of a column", "aggregate", (8,)),
            ("partner", "spend", "summary statistics of a column", "aggregate", (8,)),
        ]


def test_nothing_shared_by_default_and_unknown_column_refused() -> None:
    bank, partner = _frames()
    ch = run_local(
        {
            "bank": lambda c: joint_describe(c, "partner", bank),
            "partner": lambda c: joint_describe(c, "bank", partner),
        },
        timeout_s=20,
    )
    assert ch["bank"].result.peer == {} and ch["partner"].result.peer == {}
    assert ch["bank"].disclosures == []
    with pytest.raises(ConfigError, match="share lists"):
        joint_describe(MemoryNetwork(["a", "b"]).channel("a"), "b", bank, DescribeParams(share=("nope",)))


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

    def fake(c: Channel) -> None:
        c.send("bank", "describe", bad)
        c.recv("bank", "describe")

    with pytest.raises(error, match=match):
        run_local({"bank": lambda c: joint_describe(c, "partner", bank), "partner": fake}, timeout_s=20)


def test_a_describe_party_checks_fixed_summaries_without_a_channel() -> None:
    bank, _ = _frames()
    party = DescribeParty("partner", bank, DescribeParams(share=("income",)))
    sent = party.summaries()
    assert sent.columns == ["income"] and sent.n_rows == 200 and sent.quantiles.shape == (1, 5)
    peer = party.accept(_good()).peer
    assert list(peer) == ["c0"] and peer["c0"].quantiles == {"q0.5": 0.0}
    with pytest.raises(MalformedMessageError, match="negative"):
        party.accept(dataclasses.replace(_good(), std=np.array([-1.0])))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"quantiles": (0.5, 0.2)}, "quantiles: must be at most 99 increasing"),
        ({"min_count": 0}, "min_count: must be an integer >= 1, not 0"),
        ({"min_count": 2.5}, "min_count: must be an integer"),
        ({"share": "some"}, "share: must be a list of text or one of 'all'"),
    ],
)
def test_describe_params_refuse_wrong_values(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        DescribeParams(**kwargs)  # type: ignore[arg-type]
