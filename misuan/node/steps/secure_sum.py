"""Job step ``secure_sum``: the joint totals of numeric columns (:mod:`misuan.protocols.secure_sum`).

Spec::

    [[step]]
    kind = "secure_sum"
    params = { columns = ["balance"], scale = 100, count_rows = true }

``columns`` lists the same number of columns for every party (or a table of lists per party);
each column total is rounded from ``sum * scale``. Each party's columns are checked before anything
connects (present, numeric on every row, a total that fits in 64 bits). Output: the joint totals
(``total``, ``values`` = total / scale, ``row_count`` with ``count_rows``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from misuan.errors import DataError, MissingColumnError
from misuan.net.protocol import DATA_PARTY, FEATURE_PARTY, LABEL_PARTY
from misuan.node.data import CheckedDataset, file_lines
from misuan.node.spec import JobSpec, StepSpec
from misuan.node.steps.context import ParsedParams, StepContext, StepKind, StepResult, param_error, where
from misuan.node.steps.preview import PlannedDisclosure, plan
from misuan.params import check_params, param
from misuan.protocols.secure_sum import PROTOCOL, secure_sum
from misuan.protocols.secure_sum.disclosures import DISCLOSURES

__all__ = ["KIND", "SecureSumStepParams", "check_secure_sum", "check_secure_sum_data", "run_secure_sum"]

_INT64_MAX = 2**63 - 1


@dataclasses.dataclass(frozen=True)
class SecureSumStepParams:
    columns: tuple[str, ...] | Mapping[str, tuple[str, ...]] = param(
        (), "numeric columns to add: one list for every party, or a table of lists by party name"
    )
    scale: int = param(1, "each column total is rounded from sum * scale (e.g. 100 for cents)", ge=1, le=10**12)
    count_rows: bool = param(False, "also add up the parties' row counts")

    def __post_init__(self) -> None:
        check_params(self, "secure_sum")


def _secure_sum_columns(params: SecureSumStepParams, party: str) -> list[str]:
    cols = params.columns
    return list(cols[party]) if isinstance(cols, Mapping) else list(cols)


def check_secure_sum(step: StepSpec, spec: JobSpec, parsed: ParsedParams) -> None:
    """What the parsed params alone cannot tell: per-party lists match the step's parties and lengths."""
    params: SecureSumStepParams = parsed[SecureSumStepParams]
    cols = params.columns
    if isinstance(cols, Mapping):
        if set(cols) != set(step.parties):
            raise param_error(step, spec, "columns", f"give columns for exactly the step's parties {list(step.parties)}")
        lists = list(cols.values())
    else:
        lists = [cols]
    for lst in lists:
        if not all(lst):
            raise param_error(step, spec, "columns", f"write a list of non-empty column names, not {list(lst)!r}")
    if len({len(lst) for lst in lists}) != 1:
        raise param_error(step, spec, "columns", "every party must list the same number of columns")
    if not lists[0] and not params.count_rows:
        raise param_error(step, spec, "columns", 'list at least one column, e.g. columns = ["balance"], or set count_rows = true')


def check_secure_sum_data(step: StepSpec, spec: JobSpec, parsed: ParsedParams, data: CheckedDataset) -> None:
    """This party's columns to add exist, are numeric on every row and their totals fit in 64 bits."""
    _party_totals(parsed[SecureSumStepParams], data, f"{where(step, spec)}.params.columns")


def _party_totals(params: SecureSumStepParams, data: CheckedDataset, field: str) -> list[int]:
    """This party's total of each of its columns, times ``scale``; a DataError names the file and column."""
    return [_column_total(data, c, params.scale, field) for c in _secure_sum_columns(params, data.party)]


def _column_total(data: CheckedDataset, column: str, scale: int, field: str) -> int:
    df, who = data.frame, data.name
    if column not in df.columns:
        raise MissingColumnError(f"{who} has no column {column!r} to add ({field})")
    values = pd.to_numeric(df[column], errors="coerce")
    if values.isna().any():
        lines = file_lines(list(np.flatnonzero(values.isna().to_numpy())))
        raise DataError(f"{who}: column {column!r} has missing or non-numeric values on file line(s) {lines} ({field})")
    scaled = np.rint(values.to_numpy(dtype=np.float64) * scale)
    if scale == 1 and not np.array_equal(scaled, values.to_numpy(dtype=np.float64)):
        raise DataError(f"{who}: column {column!r} has fractional values; set params.scale (e.g. 100 for cents)")
    total = int(sum(int(v) for v in scaled))  # Python ints: no silent int64 wrap-around
    if abs(total) > _INT64_MAX:
        raise DataError(f"{who}: the total of column {column!r} times scale {scale} does not fit in 64 bits")
    return total


def run_secure_sum(ctx: StepContext) -> StepResult:
    params = ctx.param(SecureSumStepParams)
    columns = _secure_sum_columns(params, ctx.party)
    # check_secure_sum_data computed the same totals before anything connected: this cannot fail now
    vector = _party_totals(params, ctx.own_data, f"{where(ctx.step, ctx.spec)}.params.columns")
    if params.count_rows:
        vector.append(len(ctx.data))
    total = secure_sum(ctx.channel, np.array(vector, dtype=np.int64), step=ctx.step.name)
    ints = [int(v) for v in total]
    out: dict[str, Any] = {"scale": params.scale, "columns": columns, "total": ints[: len(columns)]}
    out["values"] = [v / params.scale for v in out["total"]]
    if params.count_rows:
        out["row_count"] = ints[-1]
    return StepResult(out)


def preview_secure_sum(step: StepSpec, spec: JobSpec, parsed: ParsedParams) -> list[PlannedDisclosure]:
    return plan(DISCLOSURES, step, spec)


KIND = StepKind(
    "secure_sum", run_secure_sum, check_secure_sum, params=(SecureSumStepParams,), protocols=(PROTOCOL,),
    summary="joint totals of numeric columns by additive secret sharing", check_data=check_secure_sum_data,
    preview=preview_secure_sum, roles=(LABEL_PARTY, FEATURE_PARTY, DATA_PARTY),
)
