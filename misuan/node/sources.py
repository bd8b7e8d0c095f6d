"""Where a party's dataset comes from: CSV, Parquet or Arrow files, or a PostgreSQL table or query, read in chunks.

In the job spec (the party's ``dataset`` table)::

    dataset = { path = "data/bank.parquet", id_column = "customer_id", label_column = "default_90d" }
    dataset = { path = "data/partner.arrow", id_column = "customer_id" }        # Arrow IPC file (.arrow, .feather, .ipc)
    dataset = { postgres = "postgresql://risk@db.bank.internal/warehouse", table = "scoring.customers",
                id_column = "customer_id", label_column = "default_90d" }
    dataset = { postgres = "postgresql:///warehouse", query = "SELECT ... ORDER BY customer_id", id_column = "customer_id" }

A password never goes in the spec (neither ``user:password@`` nor a ``password=`` parameter): libpq
reads it from ``PGPASSWORD``, ``~/.pgpass`` or a service file, as every PostgreSQL client does. A
table name is quoted as written (``Customers`` is not ``customers``), so it matches exactly. A query runs in a **read-only** transaction through a server-side
cursor (so only a ``SELECT``/``VALUES`` statement opens at all): the dataset part of a spec is the
party's own, local matter (not in the spec hash the parties compare), and even so a query that
would write, e.g. through a function, fails instead.

Every source yields record batches of at most ``chunk_rows`` rows: pyarrow's Parquet and IPC readers
read one row group or record batch at a time, pandas reads CSV in chunks, PostgreSQL rows come
through a server-side cursor. What a party holds at once is one chunk, plus what its caller keeps.
Each source also gives the dataset's **fingerprint**, computed as it streams: SHA-256 of a file's
bytes (read in 1 MiB blocks), or for a query of the rows it returned, in order (SHA-256 of the
column names and each value's text): give a query an ``ORDER BY`` for a fingerprint that does not
depend on the server's plan. A resumed job compares a database source's fingerprint: changed rows
run the steps again. IDs are best stored as text or integers: an ID column is read as text, a
whole float as its integer (``12.0`` -> ``12``), other values as pandas writes them.

Parquet and Arrow need ``pyarrow`` (``pip install misuan[parquet]``), PostgreSQL needs ``psycopg``
(``pip install misuan[postgres]``); a dataset naming one without it fails with that line.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from misuan.errors import ConfigError, DataError

__all__ = [
    "CHUNK_ROWS", "FILE_SUFFIXES", "FingerprintedFrames", "SourceKind", "SourceSpec", "file_fingerprint", "iter_frames", "read_frame",
    "redacted_url", "source_columns", "url_has_secret",
]

SourceKind = Literal["csv", "parquet", "arrow", "postgres"]
FILE_SUFFIXES: dict[str, SourceKind] = {
    ".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".arrow": "arrow", ".feather": "arrow", ".ipc": "arrow",
}
CHUNK_ROWS = 65536
# pandas' default missing-value strings (read_csv's documentation), for every CSV column but the ID
_CSV_NA = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A",
           "NA", "NULL", "NaN", "None", "n/a", "nan", "null")
_BLOCK = 1 << 20


@dataclasses.dataclass(frozen=True)
class SourceSpec:
    """One dataset's source: a file (``path``) or a PostgreSQL ``table`` or ``query`` at ``url``."""

    kind: SourceKind
    path: Path | None = None
    url: str | None = None
    table: str | None = None
    query: str | None = None

    @property
    def name(self) -> str:
        """How messages name it: ``bank.parquet``, ``postgres table scoring.customers``, ``postgres query``."""
        if self.path is not None:
            return self.path.name
        return f"postgres table {self.table}" if self.table else "postgres query"


_SECRET_PARAMS = ("password", "sslpassword")


def _redact(url: str) -> tuple[str, bool]:
    """``url`` with its secrets (a password in the user part, ``password=``/``sslpassword=``
    parameters) replaced by ``***``, and whether it had any."""
    head, sep, tail = url.partition("://")
    if not sep:
        return url, False
    found = False
    address, qsep, query = tail.partition("?")
    if "@" in address:
        userinfo, _, rest = address.rpartition("@")
        user = userinfo.split(":", 1)[0]
        found = ":" in userinfo
        address = f"{user + ':***' if found else user}@{rest}"
    params = []
    for part in query.split("&") if query else []:
        key = part.split("=", 1)[0]
        secret = key.strip().lower() in _SECRET_PARAMS
        found = found or secret
        params.append(f"{key}=***" if secret else part)
    return f"{head}://{address}{qsep}{'&'.join(params)}", found


def url_has_secret(url: str) -> bool:
    """Whether a connection URL carries a password (in its user part or as a query parameter)."""
    return _redact(url)[1]


def redacted_url(url: str) -> str:
    """``url`` with any password (user part, ``password=``/``sslpassword=`` parameters) replaced by ``***``."""
    return _redact(url)[0]


def _pyarrow(src: SourceSpec) -> Any:
    try:
        import pyarrow as pa
        import pyarrow.ipc  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"reading {src.name} needs pyarrow: pip install 'misuan[parquet]'") from exc
    return pa


def _psycopg(src: SourceSpec) -> Any:
    try:
        import psycopg
    except ImportError as exc:
        raise ConfigError(f"reading {src.name} needs psycopg: pip install 'misuan[postgres]'") from exc
    return psycopg


def _select(src: SourceSpec) -> Any:
    """The statement to run: the query as written, or ``SELECT * FROM`` the quoted table name."""
    from psycopg import sql

    if src.query is not None:
        return sql.SQL(src.query)  # the party's own query, run in a read-only transaction
    assert src.table is not None
    return sql.SQL("SELECT * FROM {}").format(sql.Identifier(*src.table.split(".")))


def _numeric_objects(frame: pd.DataFrame, keep: str | None) -> pd.DataFrame:
    """PostgreSQL ``numeric`` values arrive as :class:`Decimal`: as float64, like every other number."""
    for c in frame.columns:
        if c != keep and frame[c].dtype == object:
            present = frame[c].dropna()
            if len(present) and all(isinstance(v, Decimal) for v in present):
                frame[c] = pd.to_numeric(frame[c], errors="coerce").astype("float64")
    return frame


def _postgres_frames(
    src: SourceSpec, chunk_rows: int, id_column: str | None, digest: _RowsDigest | None = None,
) -> Iterator[pd.DataFrame]:
    psycopg = _psycopg(src)
    assert src.url is not None
    try:
        with psycopg.connect(src.url, autocommit=False) as conn:
            conn.read_only = True
            with conn.cursor(name="misuan_dataset") as cur:  # server-side: rows come a chunk at a time
                cur.itersize = chunk_rows
                cur.execute(_select(src))
                names = [d.name for d in cur.description or ()]
                while True:
                    rows = cur.fetchmany(chunk_rows)
                    if not rows:
                        break
                    if digest is not None:
                        digest.add_rows(names, rows)
                    yield _numeric_objects(pd.DataFrame.from_records(rows, columns=names), id_column)
    except psycopg.Error as exc:
        raise DataError(f"{src.name} at {redacted_url(src.url)}: {str(exc).strip().splitlines()[0]}") from exc


def iter_frames(
    src: SourceSpec, columns: Sequence[str] | None = None, chunk_rows: int = CHUNK_ROWS, id_column: str | None = None,
) -> Iterator[pd.DataFrame]:
    """The dataset as DataFrames of at most ``chunk_rows`` rows (``columns`` only, if given), in order.

    ``id_column`` is read as text (``007`` stays ``007``; numbers become their decimal text)."""
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be positive")
    cols = list(columns) if columns is not None else None
    if src.kind == "csv":
        assert src.path is not None
        dtype = {id_column: "string"} if id_column else None
        # pandas reads "NA", "null", "None", ... as missing; in the ID column they are customer IDs
        # (as the in-memory check reads them): no missing-value strings for that column alone
        na = {c: list(_CSV_NA) for c in source_columns(src) if c != id_column} if id_column else None
        with pd.read_csv(src.path, usecols=cols, dtype=dtype, chunksize=chunk_rows, low_memory=False,
                         keep_default_na=na is None, na_values=na) as reader:
            yield from reader
        return
    if src.kind == "postgres":
        for frame in _postgres_frames(src, chunk_rows, id_column):
            yield _as_text_id(frame[cols] if cols is not None else frame, id_column)
        return
    pa = _pyarrow(src)
    assert src.path is not None
    try:
        if src.kind == "parquet":
            batches = pa.parquet.ParquetFile(src.path).iter_batches(batch_size=chunk_rows, columns=cols)
        else:
            reader = pa.ipc.open_file(src.path)
            batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
        for batch in batches:
            for start in range(0, batch.num_rows, chunk_rows):
                part = batch.slice(start, chunk_rows)
                frame = part.to_pandas()
                yield _as_text_id(frame[cols] if cols is not None else frame, id_column)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{src.name} is not a readable {src.kind} file: {exc}") from exc


def _as_text_id(frame: pd.DataFrame, id_column: str | None) -> pd.DataFrame:
    if id_column is not None and id_column in frame.columns:
        ids = frame[id_column]
        frame[id_column] = ids.astype("string") if ids.dtype.kind != "f" else ids.map(_float_id).astype("string")
    return frame


def _float_id(v: Any) -> Any:
    """A float ID that is a whole number as its integer text (``12.0`` -> ``12``)."""
    return str(int(v)) if pd.notna(v) and float(v).is_integer() else v


def source_columns(src: SourceSpec) -> list[str]:
    """The dataset's column names, from the file's schema or the query's first chunk."""
    if src.kind == "csv":
        assert src.path is not None
        return [str(c) for c in pd.read_csv(src.path, nrows=0).columns]
    if src.kind == "parquet":
        assert src.path is not None
        return list(_pyarrow(src).parquet.ParquetFile(src.path).schema_arrow.names)
    if src.kind == "arrow":
        assert src.path is not None
        return list(_pyarrow(src).ipc.open_file(src.path).schema.names)
    first = next(iter_frames(src, chunk_rows=1), None)
    return [] if first is None else [str(c) for c in first.columns]


def file_fingerprint(path: Path) -> str:
    """``sha256:<hex>`` of the file's bytes, read 1 MiB at a time."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_BLOCK):
            h.update(block)
    return f"sha256:{h.hexdigest()}"


class _RowsDigest:
    """SHA-256 over the column names and the text of every value, row after row: the same whatever
    the chunking (a NULL in an integer column makes no float of that chunk here)."""

    def __init__(self) -> None:
        self._h = hashlib.sha256()
        self._names: list[str] | None = None

    def add_rows(self, names: list[str], rows: Sequence[Sequence[Any]]) -> None:
        if self._names is None:
            self._names = names
            self._h.update("\x1f".join(names).encode() + b"\x1e")
        for row in rows:
            self._h.update("\x1f".join("\x00" if v is None else str(v) for v in row).encode() + b"\x1e")

    def hexdigest(self) -> str:
        return f"rows-sha256:{self._h.hexdigest()}"


def read_frame(src: SourceSpec, id_column: str, chunk_rows: int = CHUNK_ROWS) -> tuple[pd.DataFrame, str]:
    """The whole dataset (chunks concatenated) and its fingerprint, computed while streaming."""
    if src.kind == "postgres":
        digest = _RowsDigest()
        frames = [_as_text_id(f, id_column) for f in _postgres_frames(src, chunk_rows, id_column, digest)]
        return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()), digest.hexdigest()
    frames = list(iter_frames(src, chunk_rows=chunk_rows, id_column=id_column))
    assert src.path is not None
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=source_columns(src))
    return frame, file_fingerprint(src.path)


class FingerprintedFrames:
    """The dataset's chunks (``iter``), and once they are all read its :meth:`fingerprint`, computed
    while they streamed (a file's bytes are hashed as a second pass over the file, 1 MiB at a time)."""

    def __init__(self, src: SourceSpec, id_column: str, chunk_rows: int = CHUNK_ROWS) -> None:
        self.src, self.id_column, self.chunk_rows = src, id_column, chunk_rows
        self._digest = _RowsDigest() if src.kind == "postgres" else None
        self._done = False

    def __iter__(self) -> Iterator[pd.DataFrame]:
        if self._digest is not None:
            frames: Iterator[pd.DataFrame] = (
                _as_text_id(f, self.id_column)
                for f in _postgres_frames(self.src, self.chunk_rows, self.id_column, self._digest)
            )
        else:
            frames = iter_frames(self.src, chunk_rows=self.chunk_rows, id_column=self.id_column)
        yield from frames
        self._done = True

    def fingerprint(self) -> str:
        if not self._done:
            raise RuntimeError("the fingerprint is known once every chunk was read")
        if self._digest is not None:
            return self._digest.hexdigest()
        assert self.src.path is not None
        return file_fingerprint(self.src.path)
