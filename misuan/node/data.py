"""A party's own dataset for a job, read once and checked in full before anything connects.

:func:`check_dataset` reads ``ds.path`` (CSV) and refuses, with one :class:`DataError` that names the
source, the column and example file lines (line 1 is the header; rows, counted from 1, for the other
sources): a missing or unreadable file, a file
with no data rows, a column name used twice in the header (pandas would silently rename the copy
``AGE`` to ``AGE.1``), a missing, empty or repeated ID, a label that is not 0/1 and a listed feature
that is absent. A feature column that is empty on every row is allowed but reported as a warning.
The ID column is read as text, so ``007`` stays ``007``.

What only some steps need is checked by those steps' kinds (``StepKind.check_data``), on the
checked dataset and still before anything connects: :func:`check_numeric_features` for the steps
that compute on the features (``woe``, ``secureboost``, ``evaluate``), so a job that never uses
them (PSI, a secure sum of other columns) runs on a file with a name or e-mail column.

The runner calls both in :func:`misuan.node.runner.check_runnable`, before any state is written or
channel opened, and hands the checked dataset to every step.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from misuan.errors import DataError, DuplicateIdError, EmptyIdError, MissingColumnError
from misuan.node.column_store import ColumnStore, build_column_store
from misuan.node.sources import file_fingerprint, read_frame
from misuan.node.spec import DatasetSpec

__all__ = [
    "CheckedDataset", "DataWarning", "check_dataset", "check_numeric_features", "feature_names", "file_lines", "row_places",
]

_SHOW = 5  # how many offending rows a message lists
_VALUES_SHOWN = 3  # how many example values of a non-numeric column a message quotes


class DataWarning(UserWarning):
    """Something in a dataset that is allowed but probably a mistake (an all-empty feature column)."""


@dataclasses.dataclass(frozen=True)
class CheckedDataset:
    """A party's dataset that passed every check, with the warnings to show its user."""

    party: str
    spec: DatasetSpec  # where it was read from, its id and label columns
    table: pd.DataFrame | None  # the ID column as text, the label (if any) as int8 0/1; None when streamed
    features: tuple[str, ...]  # the feature columns: those listed, or all but the id and label
    warnings: tuple[str, ...] = ()
    fingerprint: str = ""  # "sha256:..." of a file, "rows-sha256:..." of a query's rows (misuan.node.sources)
    store: ColumnStore | None = None  # the columns on disk, with ``stream = true`` (misuan.node.column_store)

    @property
    def frame(self) -> pd.DataFrame:
        """The whole dataset as a DataFrame; for a streamed one read from its store on first use (the
        steps that stream read columns from :attr:`store` instead)."""
        if self.table is None:
            assert self.store is not None
            object.__setattr__(self, "table", self.store.frame())
        assert self.table is not None
        return self.table

    @property
    def n_rows(self) -> int:
        return self.store.n_rows if self.store is not None else len(self.frame)

    def labels(self) -> np.ndarray:
        """The label column as int8 0/1 (a TypeError for a dataset without one)."""
        if self.spec.label_column is None:
            raise TypeError(f"{self.name} has no label column")
        if self.store is not None:
            return self.store.labels()
        return self.frame[self.spec.label_column].to_numpy(dtype=np.int8)

    def ids(self) -> pd.Series:
        """The ID column as text."""
        return self.store.ids() if self.store is not None else self.frame[self.spec.id_column]

    @property
    def name(self) -> str:
        """How messages name it: ``"partner's dataset partner.csv"``."""
        return _who(self.spec, self.party)


def _who(ds: DatasetSpec, party: str) -> str:
    return f"{party}'s dataset {ds.source.name}" if party else f"dataset {ds.source.name}"


def row_places(ds: DatasetSpec, index: pd.Index | list[int], noun: str = "(s)") -> str:
    """Where rows are: ``file line(s) 3, 7`` in a CSV file (line 1 the header), else ``row(s) 2, 6``
    (``noun="s"``: ``file lines``, ``rows``)."""
    if ds.is_csv:
        return f"file line{noun} {file_lines(index)}"
    shown = ", ".join(str(int(i) + 1) for i in index[:_SHOW])
    return f"row{noun} {shown}" + (f" and {len(index) - _SHOW} more" if len(index) > _SHOW else "")


def check_dataset(ds: DatasetSpec, party: str = "", scratch: Path | None = None) -> CheckedDataset:
    """Read the dataset and check it as the module docstring says; raises :class:`DataError`.

    A streamed dataset (``stream = true``) is checked into a column store in ``scratch`` (created
    if missing; default: the system's temporary directory), which the caller closes when done."""
    who = _who(ds, party)
    if ds.path is not None and not ds.path.is_file():
        raise DataError(f"{who}: file {ds.path} does not exist")
    if ds.stream:
        if ds.is_csv:
            _check_header(ds, who)  # before pandas renames a repeated column
        if scratch is not None:
            scratch.mkdir(parents=True, exist_ok=True)
        streamed = build_column_store(ds.source, who, ds.id_column, ds.label_column, ds.features, directory=scratch)
        return CheckedDataset(party, ds, None, streamed.features, streamed.warnings, streamed.fingerprint, streamed.store)
    if ds.is_csv:
        assert ds.path is not None
        _check_header(ds, who)
        df, fingerprint = _read(ds, who), file_fingerprint(ds.path)
    else:
        df, fingerprint = read_frame(ds.source, ds.id_column)
        _check_unique_columns(df, ds, who)
    if df.empty:
        raise DataError(f"{who} has a header line but no data rows; it needs one row per customer")
    _check_ids(df, ds, who)
    if ds.label_column is not None:
        df[ds.label_column] = _checked_label(df, ds, ds.label_column, who)
    features = feature_names(df, ds)
    missing = [c for c in features if c not in df.columns]
    if missing:
        raise _missing(df, who, missing, "feature")
    empty = [c for c in features if df[c].isna().all()]
    warnings = (
        (f"{who}: feature column(s) {empty} are empty on every row; they carry no information",) if empty else ()
    )
    return CheckedDataset(party, ds, df, tuple(features), warnings, fingerprint)


def feature_names(df: pd.DataFrame, ds: DatasetSpec) -> list[str]:
    """The dataset's feature columns: those listed, or every column but the id and label ones."""
    if ds.features != "all":
        return list(ds.features)
    return [str(c) for c in df.columns if c not in (ds.id_column, ds.label_column)]


def file_lines(index: pd.Index | list[int]) -> str:
    """File line numbers of the given row positions (header is line 1): ``"3, 7 and 2 more"``."""
    lines = [str(int(i) + 2) for i in index[:_SHOW]]
    more = f" and {len(index) - _SHOW} more" if len(index) > _SHOW else ""
    return ", ".join(lines) + more


def _check_header(ds: DatasetSpec, who: str) -> None:
    """Refuse a column name used twice: read the raw header, before pandas renames the copies."""
    try:
        header = pd.read_csv(ds.path, header=None, nrows=1, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{who} is empty: it needs a header line and rows") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as exc:
        raise DataError(f"{who} is not a readable CSV file: {exc}") from exc
    names = [str(v) for v in header.iloc[0]] if len(header) else []
    # pandas names blank header cells "Unnamed: <i>" apart, so only a repeated real name is ambiguous
    repeated = [name for name, n in Counter(names).items() if n > 1 and name.strip()]
    if repeated:
        name = repeated[0]
        where = ", ".join(str(i + 1) for i, v in enumerate(names) if v == name)
        role = " (the id column)" if name == ds.id_column else ""
        more = f"; also repeated: {repeated[1:]}" if len(repeated) > 1 else ""
        raise DataError(
            f"{who}: column {name!r}{role} appears more than once in the header (line 1, columns {where}){more}; "
            "give every column its own name"
        )


def _check_unique_columns(df: pd.DataFrame, ds: DatasetSpec, who: str) -> None:
    repeated = sorted({str(c) for c in df.columns if list(df.columns).count(c) > 1})
    if repeated:
        raise DataError(f"{who}: column(s) {repeated} appear more than once; give every column its own name")


def _read(ds: DatasetSpec, who: str) -> pd.DataFrame:
    assert ds.path is not None
    try:
        df = pd.read_csv(ds.path, dtype={ds.id_column: "string"}, low_memory=False)
        if ds.id_column in df.columns and bool(df[ds.id_column].isna().any()):
            # pandas reads "NA", "null", "NaN", ... as missing; in the ID column they are customer IDs.
            # Read that column again as plain text (only then: most files have no such ID)
            ids = pd.read_csv(ds.path, usecols=[ds.id_column], dtype="string", na_filter=False, low_memory=False)
            df[ds.id_column] = ids[ds.id_column]
        return df
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{who} is empty: it needs a header line and rows") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as exc:
        raise DataError(f"{who} is not a readable CSV file: {exc}") from exc


def _missing(df: pd.DataFrame, who: str, columns: list[str], what: str) -> MissingColumnError:
    have = [str(c) for c in df.columns]
    shown = have[:12] + (["..."] if len(have) > 12 else [])
    named = repr(columns[0]) if len(columns) == 1 else str(columns)
    return MissingColumnError(f"{who} has no {what} column {named}; its columns are {shown}")


def _check_ids(df: pd.DataFrame, ds: DatasetSpec, who: str) -> None:
    if ds.id_column not in df.columns:
        raise _missing(df, who, [ds.id_column], "id")
    ids = df[ds.id_column]
    empty = ids.isna() | (ids.str.strip() == "")
    if empty.any():
        raise EmptyIdError(
            f"{who}: id column {ds.id_column!r} is empty on {int(empty.sum())} row(s), "
            f"{row_places(ds, df.index[empty.to_numpy(dtype=bool)])}; every row needs an id"
        )
    dup = ids.duplicated(keep=False)
    if dup.any():
        values = sorted(set(ids[dup].head(_SHOW * 2)))[:_SHOW]
        raise DuplicateIdError(
            f"{who}: id column {ds.id_column!r} repeats {ids[dup].nunique()} id(s), e.g. {values}, "
            f"on {row_places(ds, df.index[dup.to_numpy(dtype=bool)], 's')}; ids must be unique"
        )


def _checked_label(df: pd.DataFrame, ds: DatasetSpec, column: str, who: str) -> pd.Series:
    """The label column as int8 0/1, or a DataError naming the offending lines and values."""
    if column not in df.columns:
        raise _missing(df, who, [column], "label")
    label = pd.to_numeric(df[column], errors="coerce")
    bad = ~label.isin([0, 1])
    if bad.any():
        examples = [str(v) for v in df[column][bad].head(_VALUES_SHOWN)]
        raise DataError(
            f"{who}: label column {column!r} must be 0 or 1 on every row; it is not on "
            f"{row_places(ds, df.index[bad.to_numpy(dtype=bool)])} (values {examples})"
        )
    return label.astype("int8")


def check_numeric_features(data: CheckedDataset) -> None:
    """Refuse text feature columns, quoting each one's first non-numeric values and their lines.

    For the step kinds that compute on the features; a :class:`DataError` names the file.
    """
    if data.store is not None:
        return  # a streamed dataset's features were checked numeric chunk by chunk
    df, who = data.frame, data.name
    text = [c for c in data.features if not pd.api.types.is_numeric_dtype(df[c])]
    if not text:
        return
    shown = []
    for c in text[:_VALUES_SHOWN]:
        col = df[c]
        bad = col.notna() & pd.to_numeric(col, errors="coerce").isna()
        rows = col[bad] if bad.any() else col.dropna()
        at = "line" if data.spec.is_csv else "row"
        examples = ", ".join(f"{v!r} on {at} {int(i) + (2 if at == 'line' else 1)}" for i, v in rows.head(_VALUES_SHOWN).items())
        shown.append(f"{c!r} holds {examples}")
    more = f" (and {len(text) - _VALUES_SHOWN} more column(s))" if len(text) > _VALUES_SHOWN else ""
    raise DataError(
        f"{who}: feature column(s) {text} are not numeric: {'; '.join(shown)}{more}; "
        "encode categories as numbers, or list only numeric columns in features"
    )
