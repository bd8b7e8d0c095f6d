"""The one role of joint describe, run by both parties: :class:`DescribeParty` and its driver :func:`joint_describe`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from misuan.errors import ConfigError, DataError, MalformedMessageError
from misuan.net.channel import Channel
from misuan.protocols.describe.disclosures import SUMMARY_STATISTICS
from misuan.protocols.describe.messages import MAX_COLUMNS, STEP, SharedSummaries
from misuan.protocols.describe.params import DescribeParams, check_levels
from misuan.protocols.describe.summaries import ColumnSummary, DescribeResult, describe_columns, level_name


class DescribeParty:
    """One party's side: its own summaries, the shared ones out, the peer's checked ones in. No channel."""

    def __init__(self, peer: str, data: pd.DataFrame | Mapping[str, Any], params: DescribeParams) -> None:
        self.peer = peer
        self.own = describe_columns(data, params.quantiles, params.min_count)
        names = list(self.own) if params.share == "all" else list(params.share)
        unknown = [c for c in names if c not in self.own]
        if unknown or len(set(names)) != len(names):
            raise ConfigError(
                f"share lists columns that are not numeric columns of this party (or repeats): {unknown}"
            )
        self.shared = names
        self.n_rows = next(iter(self.own.values())).n_rows if self.own else len(data)
        self.levels = np.asarray(params.quantiles, np.float64)  # DescribeParams checked them

    def summaries(self) -> SharedSummaries:
        """The summaries of the shared columns, for the peer."""
        sent = [self.own[c] for c in self.shared]
        return SharedSummaries(
            n_rows=self.n_rows,
            columns=list(self.shared),
            levels=self.levels,
            missing_rate=np.array([s.missing_rate for s in sent], np.float64),
            mean=np.array([s.mean for s in sent], np.float64),
            std=np.array([s.std for s in sent], np.float64),
            quantiles=np.array(
                [[s.quantiles[level_name(q)] for q in self.levels] for s in sent], np.float64
            ).reshape(len(sent), len(self.levels)),
        )

    def accept(self, msg: SharedSummaries) -> DescribeResult:
        """Check the peer's summaries (same rows, well-formed values) and return both sides'."""
        return DescribeResult(own=self.own, peer=_check_summaries(msg, self.n_rows, self.peer))


def joint_describe(
    chan: Channel,
    peer: str,
    data: pd.DataFrame | Mapping[str, Any],
    params: DescribeParams | None = None,
    *,
    step: str = STEP,
) -> DescribeResult:
    """Summarise own columns, send the peer those in ``params.share``, receive the peer's shared summaries.

    Both parties call this (it is symmetric); rows must be the intersection in the common order.
    ``params`` defaults to :class:`DescribeParams` (nothing shared).
    """
    me = DescribeParty(peer, data, params if params is not None else DescribeParams())
    ours = me.summaries()
    chan.send(peer, step, ours)
    for c in ours.columns:
        chan.disclose(step, SUMMARY_STATISTICS, chan.party, peer, (3 + len(ours.levels),), column=c)
    msg = chan.recv(peer, step, expect=SharedSummaries)
    result = me.accept(msg)
    for c in result.peer:
        chan.disclose(step, SUMMARY_STATISTICS, peer, chan.party, (3 + len(msg.levels),), column=c)
    return result


def _check_summaries(msg: SharedSummaries, n_rows: int, peer: str) -> dict[str, ColumnSummary]:
    k = len(msg.columns)
    if msg.n_rows != n_rows:
        raise DataError(
            f"{peer} describes {msg.n_rows} rows, this party {n_rows}: both must pass the intersection"
        )
    if k > MAX_COLUMNS or len(set(msg.columns)) != k or not all(0 < len(c) <= 256 for c in msg.columns):
        raise MalformedMessageError(f"{peer} sent {k} column names with duplicates, empty or over-long names")
    try:
        levels = (
            check_levels(msg.levels)
            if isinstance(msg.levels, np.ndarray) and msg.levels.dtype == np.float64
            else None
        )
    except ValueError:
        levels = None
    if levels is None:
        raise MalformedMessageError(
            f"{peer} sent quantile levels that are not increasing float64 values in (0, 1)"
        )
    for name in ("missing_rate", "mean", "std"):
        arr = getattr(msg, name)
        if not isinstance(arr, np.ndarray) or arr.dtype != np.float64 or arr.shape != (k,):
            raise MalformedMessageError(f"{peer} sent {name} that is not float64 of shape ({k},)")
    q = msg.quantiles
    if not isinstance(q, np.ndarray) or q.dtype != np.float64 or q.shape != (k, len(levels)):
        raise MalformedMessageError(
            f"{peer} sent quantiles that are not float64 of shape ({k}, {len(levels)})"
        )
    if np.any(~((msg.missing_rate >= 0) & (msg.missing_rate <= 1))) or np.any(msg.std < 0):
        raise MalformedMessageError(
            f"{peer} sent a missing rate outside [0, 1] or a negative standard deviation"
        )
    if np.any(np.isinf(msg.mean)) or np.any(np.isinf(msg.std)) or np.any(np.isinf(q)):
        raise MalformedMessageError(f"{peer} sent infinite statistics")
    return {
        c: ColumnSummary(
            column=c,
            n_rows=msg.n_rows,
            missing_rate=float(msg.missing_rate[i]),
            mean=float(msg.mean[i]),
            std=float(msg.std[i]),
            quantiles={level_name(float(lv)): float(v) for lv, v in zip(levels, q[i], strict=True)},
        )
        for i, c in enumerate(msg.columns)
    }
