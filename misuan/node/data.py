"""Loading a party's own dataset for a job, with the checks every step relies on.

The ID column is read as text (so ``007`` stays ``007``) and must be present, non-empty and unique;
the label_party's label column must hold only 0 and 1; listed feature columns must exist. Each
problem raises a :class:`DataError` subclass that names the column and the offending file lines
(line 1 is the header), so the user can fix the file.
"""

from __future__ import annotations

import pandas as pd

from misuan.errors import DataError, DuplicateIdError, EmptyIdError, MissingColumnError
from misuan.node.spec import DatasetSpec

__all__ = ["feature_columns", "load_dataset"]

_SHOW = 5  # how many offending rows a message lists


def _lines(index: pd.Index) -> str:
    """File line numbers of the given row positions (header is line 1)."""
    lines = [str(int(i) + 2) for i in index[:_SHOW]]
    more = f" and {len(index) - _SHOW} more" if len(index) > _SHOW else ""
    return ", ".join(lines) + more


def load_dataset(ds: DatasetSpec, party: str = "") -> pd.DataFrame:
    """Read ``ds.path`` (CSV) and check its ID, label and feature columns."""
    who = f"{party}'s dataset {ds.path.name}" if party else f"dataset {ds.path.name}"
    if not ds.path.is_file():
        raise DataError(f"{who}: file {ds.path} does not exist")
    try:
        df = pd.read_csv(ds.path, dtype={ds.id_column: "string"}, low_memory=False)
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{who} is empty: it needs a header line and rows") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as exc:
        raise DataError(f"{who} is not a readable CSV file: {exc}") from exc
    columns = [str(c) for c in df.columns]

    def missing(column: str, what: str) -> MissingColumnError:
        shown = columns[:12] + (["..."] if len(columns) > 12 else [])
        return MissingColumnError(f"{who} has no {what} column {column!r}; its columns are {shown}")

    if ds.id_column not in df.columns:
        raise missing(ds.id_column, "id")
    ids = df[ds.id_column]
    empty = ids.isna() | (ids.str.strip() == "")
    if empty.any():
        raise EmptyIdError(
            f"{who}: id column {ds.id_column!r} is empty on {int(empty.sum())} row(s), file line(s) "
            f"{_lines(df.index[empty.to_numpy(dtype=bool)])}; every row needs an id"
        )
    dup = ids.duplicated(keep=False)
    if dup.any():
        values = sorted(set(ids[dup].head(_SHOW * 2)))[:_SHOW]
        raise DuplicateIdError(
            f"{who}: id column {ds.id_column!r} repeats {ids[dup].nunique()} id(s), e.g. {values}, "
            f"on file lines {_lines(df.index[dup.to_numpy(dtype=bool)])}; ids must be unique"
        )
    if ds.label_column is not None:
        if ds.label_column not in df.columns:
            raise missing(ds.label_column, "label")
        label = pd.to_numeric(df[ds.label_column], errors="coerce")
        bad = ~label.isin([0, 1])
        if bad.any():
            raise DataError(
                f"{who}: label column {ds.label_column!r} must be 0 or 1 on every row; it is not on file line(s) "
                f"{_lines(df.index[bad.to_numpy(dtype=bool)])}"
            )
        df[ds.label_column] = label.astype("int8")
    if ds.features != "all":
        for c in ds.features:
            if c not in df.columns:
                raise missing(c, "feature")
    return df


def feature_columns(df: pd.DataFrame, ds: DatasetSpec) -> list[str]:
    """The dataset's feature columns: those listed, or every column but the id and label ones."""
    if ds.features != "all":
        return list(ds.features)
    return [str(c) for c in df.columns if c not in (ds.id_column, ds.label_column)]
