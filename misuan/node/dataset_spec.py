"""A party's dataset in the job spec: a file (CSV, Parquet, Arrow) or a PostgreSQL table or query.

Parsed here from the party's ``dataset`` table (:func:`parse_dataset`, called by
:mod:`misuan.node.spec`); read by :mod:`misuan.node.sources` and checked by :mod:`misuan.node.data`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from misuan.errors import JobSpecError
from misuan.net.protocol import DATA_PARTY, LABEL_PARTY
from misuan.node.sources import FILE_SUFFIXES, SourceSpec, url_has_secret
from misuan.node.spec_fields import column_name, file_path, only_keys, sub_table

__all__ = ["DatasetSpec", "parse_dataset"]

_DATASET_SUFFIXES = tuple(FILE_SUFFIXES)
_TABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?")


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A party's dataset: a file (``path``: CSV, Parquet, Arrow) or a PostgreSQL ``table`` or ``query``."""

    path: Path | None  # None for a PostgreSQL source
    id_column: str
    label_column: str | None
    features: tuple[str, ...] | Literal["all"]
    postgres: str | None = None  # a libpq connection URL, no password
    table: str | None = None
    query: str | None = None
    # read chunk by chunk into columns on local disk (misuan.node.column_store): memory bounded by a chunk
    stream: bool = False

    @property
    def source(self) -> SourceSpec:
        if self.path is not None:
            return SourceSpec(FILE_SUFFIXES[self.path.suffix.lower()], path=self.path)
        return SourceSpec("postgres", url=self.postgres, table=self.table, query=self.query)

    @property
    def is_csv(self) -> bool:
        return self.path is not None and self.source.kind == "csv"

    def identity(self) -> list[Any]:
        """Where it is and, for a file, its size and modification time (what a resumed job compares).
        A database's rows may change between runs unseen here; the checks re-read them."""
        if self.path is None:
            return [[self.postgres, self.table, self.query], []]
        try:
            st = self.path.stat()
        except OSError:
            return [str(self.path), []]
        return [str(self.path), [st.st_size, st.st_mtime_ns]]


def parse_dataset(raw: Mapping[str, Any], where: str, role: str, base: Path) -> DatasetSpec:
    ds = sub_table(raw, "dataset", where, required=True)
    dwhere = f"{where}.dataset"
    only_keys(ds, dwhere, {"path", "postgres", "table", "query", "id_column", "label_column", "features", "stream"})
    path, postgres, table, query = _source(ds, dwhere, base)
    id_column = column_name(ds.get("id_column"), f"{dwhere}.id_column")
    label_column = None
    if role in (LABEL_PARTY, DATA_PARTY):
        if "label_column" not in ds:
            raise JobSpecError(f"{dwhere}.label_column: a {role} must name its label column (0/1 values)")
        label_column = column_name(ds["label_column"], f"{dwhere}.label_column")
        if label_column == id_column:
            raise JobSpecError(f"{dwhere}.label_column: the label column cannot be the id column {id_column!r}")
    elif "label_column" in ds:
        raise JobSpecError(f"{dwhere}.label_column: a feature_party has no label column (the label_party has); remove it")
    raw_features = ds.get("features", "all")
    features: tuple[str, ...] | Literal["all"]
    if raw_features == "all":
        features = "all"
    elif isinstance(raw_features, list) and raw_features:
        features = tuple(column_name(c, f"{dwhere}.features[{k}]") for k, c in enumerate(raw_features, start=1))
        dup = sorted({c for c in features if features.count(c) > 1})
        if dup:
            raise JobSpecError(f"{dwhere}.features: columns {dup} are listed twice")
        clash = {id_column, label_column} & set(features)
        if clash:
            raise JobSpecError(f"{dwhere}.features: {sorted(c for c in clash if c)} is the id or label column, not a feature")
    else:
        raise JobSpecError(f"{dwhere}.features: write \"all\" or a non-empty list of column names, not {raw_features!r}")
    stream = ds.get("stream", False)
    if not isinstance(stream, bool):
        raise JobSpecError(f"{dwhere}.stream: write true (read in chunks into columns on disk) or false, not {stream!r}")
    return DatasetSpec(path, id_column, label_column, features, postgres, table, query, stream)


def _source(ds: Mapping[str, Any], dwhere: str, base: Path) -> tuple[Path | None, str | None, str | None, str | None]:
    """A file ``path``, or ``postgres`` with exactly one of ``table`` and ``query``."""
    if "postgres" not in ds:
        for key in ("table", "query"):
            if key in ds:
                raise JobSpecError(f"{dwhere}.{key}: a table or query needs postgres = \"postgresql://...\" (or use path)")
        path = file_path(ds.get("path"), f"{dwhere}.path", base, JobSpecError)
        if path.suffix.lower() not in _DATASET_SUFFIXES:
            raise JobSpecError(f"{dwhere}.path: {path.name} is not a file misuan reads; it reads {list(_DATASET_SUFFIXES)}")
        return path, None, None, None
    if "path" in ds:
        raise JobSpecError(f"{dwhere}: name a file (path) or a database (postgres), not both")
    url = ds["postgres"]
    if not isinstance(url, str) or not url.startswith(("postgresql://", "postgres://")):
        raise JobSpecError(f"{dwhere}.postgres: write a connection URL, e.g. \"postgresql://risk@db.internal/warehouse\"")
    if url_has_secret(url):
        raise JobSpecError(f"{dwhere}.postgres: no password in the job spec (it is shared with the other parties); "
                           "use PGPASSWORD or ~/.pgpass")
    table, query = ds.get("table"), ds.get("query")
    if (table is None) == (query is None):
        raise JobSpecError(f"{dwhere}: name exactly one of table = \"schema.name\" and query = \"SELECT ...\"")
    if table is not None and (not isinstance(table, str) or not _TABLE.fullmatch(table)):
        raise JobSpecError(f"{dwhere}.table: write a table name, optionally with its schema (\"scoring.customers\"), not {table!r}")
    if query is not None and (not isinstance(query, str) or not query.strip()):
        raise JobSpecError(f"{dwhere}.query: write a SELECT statement")
    return None, url, table, query
