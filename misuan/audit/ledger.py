"""The disclosure ledger: one SQLite file per node, one hash-chained table.

Every :class:`~misuan.net.disclosure.Disclosure` a protocol records through a node's channel becomes
a row. Rows are chained: ``hash = SHA-256(canonical JSON of the row's fields and prev_hash)``, where
``prev_hash`` is the previous row's hash (64 zeros for the first row) and the canonical JSON is
``json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)`` of

    {"seq", "job_id", "step", "discloser", "recipient", "what", "shape" (list of ints), "form",
     "detail" (object), "recorded_at" (ISO-8601 UTC), "prev_hash"}

so an exported ledger can be checked by anyone with a JSON parser and SHA-256. :meth:`Ledger.verify`
recomputes the chain and names the first row that was edited, deleted or moved.

What the chain does not show: removal of the newest rows (truncation) unless the caller compares
with a head hash kept elsewhere (``verify(expected_head=...)``; the job runner stores the head in
each job's state file), and a party that rewrites its whole ledger consistently. Because both parties
of a disclosure record it, comparing the two ledgers exposes a one-sided rewrite.

Thread- and process-safe: one lock per :class:`Ledger` object, and each append runs in an
``IMMEDIATE`` transaction so two processes appending to one file still form one chain.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from misuan.atomic_files import atomic_open
from misuan.errors import LedgerError, LedgerTamperedError
from misuan.net.disclosure import Disclosure

__all__ = ["GENESIS_HASH", "Ledger", "LedgerEntry", "row_hash", "verify_rows", "write_json_atomic"]

GENESIS_HASH = "0" * 64

_SCHEMA = """
CREATE TABLE IF NOT EXISTS disclosures (
    seq         INTEGER PRIMARY KEY,
    job_id      TEXT NOT NULL,
    step        TEXT NOT NULL,
    discloser   TEXT NOT NULL,
    recipient   TEXT NOT NULL,
    what        TEXT NOT NULL,
    shape       TEXT NOT NULL,
    form        TEXT NOT NULL,
    detail      TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
)
"""
_COLUMNS = (
    "seq", "job_id", "step", "discloser", "recipient", "what", "shape", "form", "detail",
    "recorded_at", "prev_hash", "hash",
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class LedgerEntry:
    """One stored disclosure with its place in the chain."""

    seq: int
    job_id: str
    step: str
    discloser: str
    recipient: str
    what: str
    shape: tuple[int, ...]
    form: str
    detail: dict[str, Any]
    recorded_at: str
    prev_hash: str
    hash: str

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["shape"] = list(self.shape)
        return d


def _plain(value: Any) -> Any:
    """Detail values as JSON types; numpy scalars are common in protocol code."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"a ledger detail value of type {type(value).__name__} is not JSON-able")


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_plain)


def row_hash(row: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of ``row``'s fields other than ``hash``."""
    body = {k: row[k] for k in _COLUMNS if k != "hash"}
    body["shape"] = [int(s) for s in body["shape"]]
    return hashlib.sha256(_canonical(body).encode("utf-8")).hexdigest()


def verify_rows(rows: Iterable[Mapping[str, Any]], expected_head: str | None = None) -> int:
    """Check a sequence of rows (as dicts, oldest first) forms an intact chain; returns its length.

    Raises :class:`LedgerTamperedError` naming the first row whose sequence number, link or hash
    is wrong, or if the last hash differs from ``expected_head``.
    """
    prev = GENESIS_HASH
    count = 0
    for i, row in enumerate(rows, start=1):
        seq = row.get("seq")
        if seq != i:
            raise LedgerTamperedError(
                f"ledger row #{i} has sequence number {seq!r}: a row was deleted, inserted or moved"
            )
        if row.get("prev_hash") != prev:
            raise LedgerTamperedError(
                f"ledger row #{i} does not link to row #{i - 1}: a row before it was deleted, edited or moved"
            )
        try:
            want = row_hash(row)
        except (KeyError, TypeError, ValueError) as exc:
            raise LedgerTamperedError(f"ledger row #{i} is malformed: {exc}") from exc
        if row.get("hash") != want:
            raise LedgerTamperedError(
                f"ledger row #{i} (job {row.get('job_id')!r}, step {row.get('step')!r}) was edited: "
                "its hash does not match its contents"
            )
        prev = want
        count = i
    if expected_head is not None and prev != expected_head:
        raise LedgerTamperedError(
            f"the ledger ends at hash {prev[:16]}... after {count} rows, but {expected_head[:16]}... "
            "was expected: rows were removed from its end"
        )
    return count


class Ledger:
    """A node's disclosure ledger; implements :class:`~misuan.net.disclosure.DisclosureRecorder`."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we issue BEGIN/COMMIT ourselves
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: a committed row survives a crash of this process; only an OS crash or power
            # cut may lose the newest rows (never corrupt the chain). FULL costs ~3 ms per row (an fsync),
            # too slow for protocols that record thousands of disclosures inline.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise LedgerError(f"cannot open the ledger {self.path}: {exc}") from exc

    # --- DisclosureRecorder --------------------------------------------------------------------
    def record(self, disclosure: Disclosure) -> None:
        recorded_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")
        try:
            detail_json = _canonical(dict(disclosure.detail))
        except (TypeError, ValueError) as exc:
            raise LedgerError(f"step {disclosure.step!r}: disclosure detail is not recordable: {exc}") from exc
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")  # take the write lock before reading the head
                try:
                    last = self._db.execute("SELECT seq, hash FROM disclosures ORDER BY seq DESC LIMIT 1").fetchone()
                    seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
                    row: dict[str, Any] = {
                        "seq": seq,
                        "job_id": disclosure.job_id,
                        "step": disclosure.step,
                        "discloser": disclosure.discloser,
                        "recipient": disclosure.recipient,
                        "what": disclosure.what,
                        "shape": [int(s) for s in disclosure.shape],
                        "form": disclosure.form,
                        "detail": json.loads(detail_json),
                        "recorded_at": recorded_at,
                        "prev_hash": prev,
                    }
                    row["hash"] = row_hash(row)
                    stored = dict(row, shape=_canonical(row["shape"]), detail=detail_json)
                    self._db.execute(
                        f"INSERT INTO disclosures ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                        [stored[c] for c in _COLUMNS],
                    )
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise LedgerError(f"cannot write to the ledger {self.path}: {exc}") from exc

    # --- reading -------------------------------------------------------------------------------
    def _rows(self, job_id: str | None = None) -> list[dict[str, Any]]:
        sql = f"SELECT {', '.join(_COLUMNS)} FROM disclosures"
        args: tuple[str, ...] = ()
        if job_id is not None:
            sql += " WHERE job_id = ?"
            args = (job_id,)
        with self._lock:
            try:
                raw = self._db.execute(sql + " ORDER BY seq", args).fetchall()
            except sqlite3.Error as exc:
                raise LedgerError(f"cannot read the ledger {self.path}: {exc}") from exc
        rows = []
        for values in raw:
            row = dict(zip(_COLUMNS, values, strict=True))
            try:
                row["shape"] = json.loads(row["shape"])
                row["detail"] = json.loads(row["detail"])
            except (TypeError, json.JSONDecodeError) as exc:
                raise LedgerTamperedError(f"ledger row #{row['seq']} has unreadable shape or detail") from exc
            rows.append(row)
        return rows

    def entries(self, job_id: str | None = None) -> list[LedgerEntry]:
        """Stored disclosures, oldest first; only ``job_id``'s if given."""
        out = []
        for row in self._rows(job_id):
            try:
                out.append(LedgerEntry(**dict(row, shape=tuple(int(s) for s in row["shape"]))))
            except (TypeError, ValueError) as exc:
                raise LedgerTamperedError(f"ledger row #{row['seq']} is malformed: {exc}") from exc
        return out

    def head(self) -> str:
        """The newest row's hash (the genesis hash when empty); keep it to detect truncation later."""
        with self._lock:
            try:
                last = self._db.execute("SELECT hash FROM disclosures ORDER BY seq DESC LIMIT 1").fetchone()
            except sqlite3.Error as exc:
                raise LedgerError(f"cannot read the ledger {self.path}: {exc}") from exc
        return str(last[0]) if last else GENESIS_HASH

    def verify(self, expected_head: str | None = None) -> int:
        """Recompute the whole chain; returns the number of rows, or raises :class:`LedgerTamperedError`."""
        return verify_rows(self._rows(), expected_head)

    def export_json(self, path: str | os.PathLike[str], job_id: str | None = None) -> Path:
        """Write the ledger (or one job's rows) as JSON, atomically; returns the path.

        The whole chain is verified first, so an export never launders a tampered ledger.
        """
        self.verify()
        rows = self._rows(job_id)
        doc = {
            "format": "misuan-ledger",
            "version": 1,
            "hash": "sha256 over canonical JSON of each row without 'hash'; see misuan.audit.ledger",
            "job_id": job_id,
            "complete": job_id is None,  # a per-job export is a subset: its chain cannot be re-verified
            "rows": rows,
        }
        return write_json_atomic(Path(path), doc)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_json_atomic(path: Path, doc: Any) -> Path:
    """Write ``doc`` as JSON to ``path`` via a temporary file and ``os.replace``: never a partial file."""
    with atomic_open(path) as f:
        json.dump(doc, f, indent=2, ensure_ascii=False, allow_nan=False, default=_plain)
        f.write("\n")
    return path
