"""A party's dataset read chunk by chunk into columns on local disk: memory bounded by a chunk, not the rows.

With ``stream = true`` in a party's ``dataset`` table, the checks of :mod:`misuan.node.data` run
chunk by chunk (:func:`build_column_store`) and each column is appended to a file of its own in a
private temporary directory (mode 0700, removed when the store is closed or the process ends):

- the IDs as UTF-8 text with an offsets file (8 bytes a row),
- the label as int8, each feature as float64 (NaN = missing), in rows' order.

Then the steps that stream (``psi``, ``woe``, ``secureboost``) read one column at a time, of the
rows they need (:class:`FeatureColumns`), from memory-mapped files; every other step reads the
whole table as a DataFrame (:meth:`ColumnStore.frame`), as it would without ``stream``.

What is checked per chunk is what the in-memory checks check on the whole file: the columns present
and named once, IDs non-empty, labels 0 or 1, and (here, for every listed feature, since the steps
that stream compute on them) numeric features. Distinct IDs are checked at the end from a 64-bit
hash per row, spilled to disk and checked in buckets of about 4M rows (a hash seen twice is compared
on the IDs themselves). Memory while checking: one chunk, then one bucket, whatever the rows.

The files hold the party's data in the clear, as the source does: the directory is the party's,
inside its trust boundary, like the source itself.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from misuan.errors import DataError, DuplicateIdError, EmptyIdError, MissingColumnError
from misuan.node.sources import CHUNK_ROWS, FingerprintedFrames, SourceSpec

__all__ = ["ColumnStore", "FeatureColumns", "StreamedCheck", "build_column_store", "repeated_rows"]

_SHOW = 5  # offending rows a message lists
_CHECK_BUCKET_ROWS = 1 << 22  # (hash, row) pairs a bucket of the distinctness check sorts in memory
_HASH_ROW = np.dtype([("hash", "<i8"), ("row", "<i8")])


@dataclasses.dataclass
class StreamedCheck:
    """What :func:`build_column_store` found: the store, its warnings and the source's fingerprint."""

    store: ColumnStore
    features: tuple[str, ...]
    warnings: tuple[str, ...]
    fingerprint: str


class ColumnStore:
    """A checked dataset's columns, one file each, in a private directory removed on :meth:`close`."""

    def __init__(self, root: Path, n_rows: int, id_column: str, label_column: str | None, features: Sequence[str]) -> None:
        self.root = root
        self.n_rows = n_rows
        self.id_column = id_column
        self.label_column = label_column
        self.features = tuple(features)
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(root), True)

    def close(self) -> None:
        """Remove the directory (also done when the store is garbage-collected or the process exits)."""
        self._finalizer()

    def _feature_path(self, name: str) -> Path:
        return self.root / f"f{self.features.index(name)}.f64"

    def column(self, name: str, rows: np.ndarray | None = None) -> np.ndarray:
        """Feature ``name`` as float64 (NaN = missing), of ``rows`` (positions) or every row."""
        if name not in self.features:
            raise KeyError(name)
        values = np.memmap(self._feature_path(name), dtype=np.float64, mode="r", shape=(self.n_rows,))
        return np.array(values if rows is None else values[rows], dtype=np.float64)

    def labels(self, rows: np.ndarray | None = None) -> np.ndarray:
        """The label column as int8 0/1, of ``rows`` or every row."""
        if self.label_column is None:
            raise TypeError("this dataset has no label column")
        values = np.fromfile(self.root / "label.i8", dtype=np.int8)
        return values if rows is None else values[rows]

    def ids(self, rows: np.ndarray | None = None) -> pd.Series:
        """The IDs as text (pandas ``string``), of ``rows`` or every row, in that order."""
        offsets = np.fromfile(self.root / "id.offsets", dtype=np.int64)
        raw = (self.root / "id.utf8").read_bytes()  # the IDs' text: ~10-20 bytes a row
        picked = range(self.n_rows) if rows is None else np.asarray(rows, dtype=np.int64).tolist()
        bounds = offsets.tolist()
        out = [raw[bounds[i] : bounds[i + 1]].decode("utf-8") for i in picked]
        return pd.Series(out, dtype="string", name=self.id_column)

    def iter_ids(self, chunk_rows: int = CHUNK_ROWS) -> Iterator[pd.Series]:
        """The IDs as text, ``chunk_rows`` at a time, in order (memory: one chunk)."""
        # the offsets read a chunk at a time too: a memory map would keep every page it touched resident
        with (self.root / "id.utf8").open("rb") as f:
            for a in range(0, self.n_rows, chunk_rows):
                count = min(a + chunk_rows, self.n_rows) + 1 - a
                offsets = np.fromfile(self.root / "id.offsets", dtype=np.int64, count=count, offset=8 * a)
                bounds = (offsets - offsets[0]).tolist()
                raw = f.read(bounds[-1])
                yield pd.Series([raw[bounds[i] : bounds[i + 1]].decode("utf-8") for i in range(len(bounds) - 1)],
                                dtype="string", name=self.id_column)

    def repeated_positions(self, hash_chunks: Iterable[np.ndarray]) -> np.ndarray:
        """Rows (sorted) whose 64-bit hash in ``hash_chunks`` (row order, a chunk at a time) another row
        shares: the candidates for a repeat, to be compared on the values themselves.

        The (hash, row) pairs go to bucket files on disk by hash (about 4M rows a bucket), and each
        bucket is sorted in memory on its own: at most ~64 MB whatever the rows, as PSI's buckets.
        """
        n_buckets = max(1, -(-self.n_rows // _CHECK_BUCKET_ROWS))
        paths = [self.root / f"check-{b}.bin" for b in range(n_buckets)]
        try:
            files = [p.open("wb") for p in paths]
            try:
                start = 0
                for h in hash_chunks:
                    rec: np.ndarray = np.empty(len(h), dtype=_HASH_ROW)
                    rec["hash"], rec["row"] = h, np.arange(start, start + len(h))
                    start += len(h)
                    rec = rec[np.argsort(rec["hash"].view(np.uint64) % n_buckets, kind="stable")]
                    bounds = np.searchsorted(rec["hash"].view(np.uint64) % n_buckets, np.arange(n_buckets + 1))
                    for b, f in enumerate(files):
                        f.write(rec[bounds[b] : bounds[b + 1]].tobytes())
            finally:
                for f in files:
                    f.close()
            found = []
            for p in paths:
                rec = np.asarray(np.fromfile(p, dtype=_HASH_ROW))
                p.unlink()
                same = repeated_rows(rec["hash"])
                if len(same):
                    found.append(rec["row"][same])
            return np.sort(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)
        finally:
            for p in paths:
                p.unlink(missing_ok=True)

    def frame(self) -> pd.DataFrame:
        """The whole dataset as the in-memory checks give it: the ID as text, the label int8, features float64."""
        cols: dict[str, Any] = {self.id_column: self.ids()}
        if self.label_column is not None:
            cols[self.label_column] = self.labels()
        for name in self.features:
            cols[name] = self.column(name)
        return pd.DataFrame(cols)


class FeatureColumns(Mapping[str, np.ndarray]):
    """Some rows of a store's features, read a column at a time when asked (``Mapping`` name -> float64).

    What the streaming protocols take instead of a table (WOE's feature columns, SecureBoost's
    :class:`~misuan.protocols.secureboost.binning.ColumnTable`): only one column is in memory at once.
    """

    def __init__(self, store: ColumnStore, names: Sequence[str], rows: np.ndarray) -> None:
        self.store = store
        self.names = [str(n) for n in names]
        self.rows = np.asarray(rows, dtype=np.int64)

    @property
    def n_rows(self) -> int:
        return len(self.rows)

    def column(self, j: int) -> np.ndarray:
        return self.store.column(self.names[j], self.rows)

    def take(self, positions: np.ndarray) -> FeatureColumns:
        """These columns at ``positions`` of the current rows (e.g. the training rows of a split)."""
        return FeatureColumns(self.store, self.names, self.rows[np.asarray(positions, dtype=np.int64)])

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.names:
            raise KeyError(name)
        return self.store.column(name, self.rows)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


class _Writer:
    """Appends checked chunks to the column files."""

    def __init__(self, root: Path, features: Sequence[str], has_label: bool) -> None:
        self.root = root
        self.files: dict[str, IO[bytes]] = {}
        names = ["id.utf8", "id.offsets"] + (["label.i8"] if has_label else [])
        try:
            for name in names:
                self.files[name] = (root / name).open("wb")
        except BaseException:
            self.close()
            raise
        self.files["id.offsets"].write(np.zeros(1, dtype=np.int64).tobytes())
        # the feature files are opened per chunk (a wide table would pass the open-files limit)
        self.feature_paths = [root / f"f{k}.f64" for k in range(len(features))]
        for path in self.feature_paths:
            path.touch()
        self.at = 0

    def add(self, ids: pd.Series, label: np.ndarray | None, features: list[np.ndarray]) -> None:
        encoded = [s.encode("utf-8") for s in ids.tolist()]
        lengths = np.fromiter((len(b) for b in encoded), dtype=np.int64, count=len(encoded))
        self.files["id.offsets"].write((self.at + np.cumsum(lengths)).astype(np.int64).tobytes())
        self.at += int(lengths.sum())
        self.files["id.utf8"].write(b"".join(encoded))
        if label is not None:
            self.files["label.i8"].write(label.astype(np.int8).tobytes())
        for path, values in zip(self.feature_paths, features, strict=True):
            with path.open("ab") as f:
                f.write(np.ascontiguousarray(values, dtype=np.float64).tobytes())

    def close(self) -> None:
        for f in self.files.values():
            f.close()


def build_column_store(
    src: SourceSpec, who: str, id_column: str, label_column: str | None, features: tuple[str, ...] | str,
    chunk_rows: int = CHUNK_ROWS, directory: str | os.PathLike[str] | None = None,
) -> StreamedCheck:
    """Read ``src`` chunk by chunk, check each chunk and append it to a new :class:`ColumnStore`.

    ``features`` is a tuple of column names or ``"all"`` (every column but the ID and label).
    Raises :class:`DataError` (or a subclass) naming ``who`` and the rows; the directory is removed then.
    """
    root = Path(tempfile.mkdtemp(prefix="misuan-columns-", dir=directory))  # mode 0700
    try:
        return _stream(src, root, who, id_column, label_column, features, chunk_rows)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise


def _stream(
    src: SourceSpec, root: Path, who: str, id_column: str, label_column: str | None, features: tuple[str, ...] | str,
    chunk_rows: int,
) -> StreamedCheck:
    frames = FingerprintedFrames(src, id_column, chunk_rows)
    writer: _Writer | None = None
    names: tuple[str, ...] = ()
    hashes = (root / "id.hash").open("wb")  # 8 bytes a row, on disk until the distinctness check
    present: np.ndarray = np.zeros(0, dtype=np.int64)
    start = 0
    try:
        for chunk in frames:
            if writer is None:
                names = _columns(chunk, who, id_column, label_column, features)
                writer = _Writer(root, names, label_column is not None)
                present = np.zeros(len(names), dtype=np.int64)
            at = _Place(start, src.kind == "csv")
            ids = _checked_ids(chunk, who, id_column, at)
            label = None if label_column is None else _checked_label(chunk, who, label_column, at)
            values = [_numeric(chunk, who, name, at) for name in names]
            present += np.array([int(np.count_nonzero(~np.isnan(v))) for v in values], dtype=np.int64)
            hashes.write(pd.util.hash_array(ids.to_numpy(dtype=object)).view(np.int64).tobytes())
            writer.add(ids, label, values)
            start += len(chunk)
    finally:
        hashes.close()
        if writer is not None:
            writer.close()
    if writer is None or start == 0:
        raise DataError(f"{who} has no data rows; it needs one row per customer")
    store = ColumnStore(root, start, id_column, label_column, names)
    _check_distinct(store, who, src.kind == "csv")
    empty = [n for n, c in zip(names, present.tolist(), strict=True) if c == 0]
    warnings = (f"{who}: feature column(s) {empty} are empty on every row; they carry no information",) if empty else ()
    return StreamedCheck(store, names, warnings, frames.fingerprint())


@dataclasses.dataclass(frozen=True)
class _Place:
    """Where a chunk's rows are, for messages: CSV file lines (line 1 the header), else rows from 1."""

    start: int  # the chunk's first row in the dataset
    csv: bool

    def rows(self, positions: np.ndarray) -> str:
        first = self.start + (2 if self.csv else 1)
        shown = ", ".join(str(int(i) + first) for i in positions[:_SHOW])
        more = f" and {len(positions) - _SHOW} more" if len(positions) > _SHOW else ""
        return f"{'file line' if self.csv else 'row'}(s) {shown}{more}"


def _columns(chunk: pd.DataFrame, who: str, id_column: str, label_column: str | None, features: tuple[str, ...] | str) -> tuple[str, ...]:
    have = [str(c) for c in chunk.columns]
    repeated = sorted({c for c in have if have.count(c) > 1})
    if repeated:
        raise DataError(f"{who}: column(s) {repeated} appear more than once; give every column its own name")
    names = tuple(c for c in have if c not in (id_column, label_column)) if features == "all" else tuple(features)
    for what, wanted in (("id", [id_column]), ("label", [label_column] if label_column else []), ("feature", list(names))):
        missing = [c for c in wanted if c not in have]
        if missing:
            shown = have[:12] + (["..."] if len(have) > 12 else [])
            raise MissingColumnError(f"{who} has no {what} column {missing if len(missing) > 1 else repr(missing[0])}; "
                                     f"its columns are {shown}")
    return names


def _checked_ids(chunk: pd.DataFrame, who: str, column: str, at: _Place) -> pd.Series:
    ids = chunk[column].astype("string")
    empty = (ids.isna() | (ids.str.strip() == "")).to_numpy(dtype=bool)
    if empty.any():
        raise EmptyIdError(f"{who}: id column {column!r} is empty on {at.rows(np.flatnonzero(empty))}; every row needs an id")
    return ids


def _checked_label(chunk: pd.DataFrame, who: str, column: str, at: _Place) -> np.ndarray:
    label = pd.to_numeric(chunk[column], errors="coerce")
    bad = ~label.isin([0, 1]).to_numpy(dtype=bool)
    if bad.any():
        examples = [str(v) for v in chunk[column][bad].head(3)]
        raise DataError(f"{who}: label column {column!r} must be 0 or 1 on every row; it is not on "
                        f"{at.rows(np.flatnonzero(bad))} (values {examples})")
    return label.to_numpy(dtype=np.int8)


def _numeric(chunk: pd.DataFrame, who: str, name: str, at: _Place) -> np.ndarray:
    col = chunk[name]
    if pd.api.types.is_numeric_dtype(col.dtype) or col.isna().all():
        return col.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = col.notna() & pd.to_numeric(col, errors="coerce").isna()
    examples = ", ".join(f"{col.iloc[i]!r} on {at.rows(np.array([i]))}" for i in np.flatnonzero(bad.to_numpy(dtype=bool))[:3])
    raise DataError(f"{who}: feature column {name!r} is not numeric: it holds {examples}; encode categories as "
                    "numbers, or list only numeric columns in features")


def _spans(n: int, chunk_rows: int = CHUNK_ROWS * 16) -> Iterator[tuple[int, int]]:
    """(start, count) of consecutive row ranges covering ``range(n)``."""
    for a in range(0, n, chunk_rows):
        yield a, min(chunk_rows, n - a)


def repeated_rows(hashes: np.ndarray) -> np.ndarray:
    """Positions whose 64-bit hash another position shares (sorted): the candidates for a repeat."""
    order = np.argsort(hashes, kind="stable")
    sorted_h = hashes[order]
    same = np.flatnonzero(sorted_h[1:] == sorted_h[:-1])
    return np.unique(np.concatenate([order[same], order[same + 1]]))


def _check_distinct(store: ColumnStore, who: str, csv: bool) -> None:
    """Refuse repeated IDs: rows whose 64-bit hashes collide are compared on the IDs themselves."""
    path = store.root / "id.hash"
    suspects = store.repeated_positions(np.fromfile(path, dtype=np.int64, count=c, offset=8 * a)
                                        for a, c in _spans(store.n_rows))
    path.unlink()
    if not len(suspects):
        return
    ids = store.ids(suspects)
    dup = ids.duplicated(keep=False).to_numpy(dtype=bool)
    if dup.any():
        values = sorted(set(ids[dup].tolist()))[:_SHOW]
        raise DuplicateIdError(f"{who}: id column {store.id_column!r} repeats {len(set(ids[dup].tolist()))} id(s), "
                               f"e.g. {values}, on {_Place(0, csv).rows(np.sort(suspects[dup]))}; ids must be unique")
