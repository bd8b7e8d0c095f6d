"""The disclosure ledger: one SQLite file per node, one hash-chained table.

Every :class:`~misuan.net.disclosure.Disclosure` a protocol records through a node's channel becomes
a row. Rows are chained: ``hash = SHA-256(canonical JSON of the row's fields and prev_hash)``, where
``prev_hash`` is the previous row's hash (64 zeros for the first row) and the canonical JSON is
``json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)`` of

    {"seq", "job_id", "step", "discloser", "recipient", "what", "shape" (list of ints), "form",
     "detail" (object), "recorded_at" (ISO-8601 UTC), "prev_hash"}

so an exported ledger can be checked by anyone with a JSON parser and SHA-256. :meth:`Ledger.verify`
recomputes the chain and names the first row that was edited, deleted or moved.

What the chain alone does not show: removal of the newest rows (truncation) and a rewrite of its
tail with every later hash recomputed. Both are caught against a head kept elsewhere:
``verify(expected_head=..., expected_length=...)`` (the job runner keeps the head in each job's state
file) and the peers' **anchors** (:mod:`misuan.crypto.anchor`): at the end of every job each party
signs its (length, head) and every peer keeps it. :meth:`Ledger.check_anchor` checks this ledger
against an anchor a peer holds of it. The anchors a party signed and received are kept in a second
table, ``anchors``, hash-chained the same way (its own chain, ``anchor_hash``), so that the anchors
themselves are never rows of the disclosure chain they vouch for: an anchor covers every disclosure
of its job. A small ``ledger_meta`` table names the ledger's party (not chained: a hint for tools).

Thread- and process-safe: one lock per :class:`Ledger` object, and each append runs in an
``IMMEDIATE`` transaction so two processes appending to one file still form one chain.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from misuan.atomic_files import atomic_open
from misuan.crypto.anchor import LedgerAnchor
from misuan.errors import LedgerError, LedgerTamperedError
from misuan.net.disclosure import Disclosure

__all__ = [
    "GENESIS_HASH",
    "Ledger",
    "LedgerEntry",
    "anchor_hash",
    "check_rows_against_anchor",
    "judge_anchor",
    "row_hash",
    "verify_anchor_rows",
    "verify_rows",
    "write_json_atomic",
    "BatchingRecorder",
]

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
_ANCHOR_SCHEMA = """
CREATE TABLE IF NOT EXISTS anchors (
    seq         INTEGER PRIMARY KEY,
    holder      TEXT NOT NULL,
    job_id      TEXT NOT NULL,
    signer      TEXT NOT NULL,
    length      INTEGER NOT NULL,
    head        TEXT NOT NULL,
    signed_at   TEXT NOT NULL,
    key_kind    TEXT NOT NULL,
    public_key  TEXT NOT NULL,
    signature   TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
)
"""
_ANCHOR_COLUMNS = (
    "seq", "holder", "job_id", "signer", "length", "head", "signed_at", "key_kind", "public_key", "signature",
    "prev_hash", "hash",
)  # fmt: skip
_META_SCHEMA = "CREATE TABLE IF NOT EXISTS ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"


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


def anchor_hash(row: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of an ``anchors`` row's fields other than ``hash``."""
    body = {k: row[k] for k in _ANCHOR_COLUMNS if k != "hash"}
    return hashlib.sha256(_canonical(body).encode("utf-8")).hexdigest()


def verify_anchor_rows(rows: Iterable[Mapping[str, Any]]) -> int:
    """Check the ``anchors`` table's own chain (as :func:`verify_rows` does the disclosures')."""
    prev = GENESIS_HASH
    count = 0
    for i, row in enumerate(rows, start=1):
        if row.get("seq") != i or row.get("prev_hash") != prev:
            raise LedgerTamperedError(f"anchor row #{i} is out of place: an anchor was deleted, inserted or moved")
        try:
            want = anchor_hash(row)
        except (KeyError, TypeError, ValueError) as exc:
            raise LedgerTamperedError(f"anchor row #{i} is malformed: {exc}") from exc
        if row.get("hash") != want:
            raise LedgerTamperedError(f"anchor row #{i} (signed by {row.get('signer')!r}) was edited")
        prev, count = want, i
    return count


def check_rows_against_anchor(rows: list[Mapping[str, Any]], length: int, head: str, source: str) -> None:
    """Refuse a chain (oldest first) that lacks row ``length`` with hash ``head``.

    ``source`` says where the anchor comes from ("bank's anchor of job 'j1'"). A chain shorter than
    the anchor was truncated; one whose row ``length`` has another hash had that row or an earlier
    one rewritten (every later hash recomputed, or the anchor would not be needed to see it).
    """
    at = rows[length - 1].get("hash") if 0 < length <= len(rows) else None
    judge_anchor(len(rows), at, length, head, source)


def judge_anchor(n_rows: int, hash_at_length: str | None, length: int, head: str, source: str) -> None:
    """:func:`check_rows_against_anchor` given the chain's length and its row ``length``'s hash."""
    if length == 0:
        if head != GENESIS_HASH:
            raise LedgerTamperedError(f"{source} is malformed: an empty ledger has the genesis hash")
        return
    if n_rows < length:
        raise LedgerTamperedError(
            f"the ledger was truncated: it has {n_rows} rows, but {source} vouches for {length} rows "
            f"ending in {head[:16]}...; rows were removed from its end"
        )
    if hash_at_length != head:
        raise LedgerTamperedError(
            f"the ledger was rewritten: its row #{length} has hash {str(hash_at_length)[:16]}..., "
            f"but {source} vouches for {head[:16]}...; that row or an earlier one was changed and the later hashes "
            "recomputed"
        )


def verify_rows(
    rows: Iterable[Mapping[str, Any]], expected_head: str | None = None, expected_length: int | None = None
) -> int:
    """Check a sequence of rows (as dicts, oldest first) forms an intact chain; returns its length.

    Raises :class:`LedgerTamperedError` naming the first row whose sequence number, link or hash
    is wrong, or if the last hash differs from ``expected_head`` (at ``expected_length`` rows when
    given: then a longer chain passes if its row ``expected_length`` has that hash).
    """
    if expected_length is not None:
        materialised = list(rows)
        verify_rows(materialised)
        check_rows_against_anchor(materialised, expected_length, expected_head or GENESIS_HASH, "the expected head")
        return len(materialised)
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

    def __init__(self, path: str | os.PathLike[str], party: str | None = None) -> None:
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
            self._db.execute(_ANCHOR_SCHEMA)
            self._db.execute(_META_SCHEMA)
            stored = self._db.execute("SELECT value FROM ledger_meta WHERE key = 'party'").fetchone()
            if party is not None and stored is None:
                self._db.execute("INSERT OR IGNORE INTO ledger_meta (key, value) VALUES ('party', ?)", (party,))
        except (sqlite3.Error, OSError) as exc:
            raise LedgerError(f"cannot open the ledger {self.path}: {exc}") from exc
        if party is not None and stored is not None and stored[0] != party:
            self._db.close()
            raise LedgerError(f"the ledger {self.path} belongs to {stored[0]!r}, not {party!r}")
        self.party: str | None = party if party is not None else (str(stored[0]) if stored else None)

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        """One write transaction: SQLite's write lock is taken before the chain head is read, so
        threads and processes sharing the ledger still form one chain; all of it or nothing lands."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise LedgerError(f"cannot write to the ledger {self.path}: {exc}") from exc

    # --- DisclosureRecorder --------------------------------------------------------------------
    def record(self, disclosure: Disclosure) -> None:
        self.record_many([disclosure])

    def record_many(self, disclosures: Iterable[Disclosure]) -> None:
        """Append ``disclosures`` in order, in one transaction (a serving node batches its queries' rows)."""
        batch = list(disclosures)
        if not batch:
            return
        prepared = []
        for disclosure in batch:
            try:
                prepared.append((disclosure, _canonical(dict(disclosure.detail))))
            except (TypeError, ValueError) as exc:
                raise LedgerError(f"step {disclosure.step!r}: disclosure detail is not recordable: {exc}") from exc
        with self._write():
            last = self._db.execute("SELECT seq, hash FROM disclosures ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (last[0], last[1]) if last else (0, GENESIS_HASH)
            for disclosure, detail_json in prepared:
                seq += 1
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
                    "recorded_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds"),
                    "prev_hash": prev,
                }
                row["hash"] = prev = row_hash(row)
                stored = dict(row, shape=_canonical(row["shape"]), detail=detail_json)
                self._db.execute(
                    f"INSERT INTO disclosures ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                    [stored[c] for c in _COLUMNS],
                )

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

    def length(self) -> int:
        """The number of disclosure rows (the newest row's sequence number)."""
        with self._lock:
            try:
                last = self._db.execute("SELECT MAX(seq) FROM disclosures").fetchone()
            except sqlite3.Error as exc:
                raise LedgerError(f"cannot read the ledger {self.path}: {exc}") from exc
        return int(last[0] or 0)

    def verify(self, expected_head: str | None = None, expected_length: int | None = None) -> int:
        """Recompute both chains (disclosures, anchors); returns the number of disclosure rows, or raises
        :class:`LedgerTamperedError` (also if ``expected_head`` is not the head, or not row
        ``expected_length``'s hash when that is given)."""
        n = verify_rows(self._rows(), expected_head, expected_length)
        verify_anchor_rows(self._anchor_rows())
        return n

    # --- anchors -------------------------------------------------------------------------------
    def durable_head(self) -> tuple[int, str]:
        """(length, head) after forcing the write-ahead log to disk, so a signed head survives a power cut."""
        with self._lock:
            try:
                self._db.execute("PRAGMA wal_checkpoint(FULL)")
            except sqlite3.Error as exc:
                raise LedgerError(f"cannot checkpoint the ledger {self.path}: {exc}") from exc
        return self.length(), self.head()

    def record_anchor(self, anchor: LedgerAnchor, holder: str) -> None:
        """Keep an anchor ``holder`` holds: one this party signed and sent (holder = the peer) or one a
        peer signed and sent it (holder = this party). Chained in the ``anchors`` table."""
        with self._write():
            last = self._db.execute("SELECT seq, hash FROM anchors ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
            row: dict[str, Any] = dict(anchor.as_dict(), seq=seq, holder=holder, prev_hash=prev)
            row["hash"] = anchor_hash(row)
            self._db.execute(
                f"INSERT INTO anchors ({', '.join(_ANCHOR_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(_ANCHOR_COLUMNS))})",
                [row[c] for c in _ANCHOR_COLUMNS],
            )

    def _anchor_rows(self) -> list[dict[str, Any]]:
        with self._lock:
            try:
                raw = self._db.execute(f"SELECT {', '.join(_ANCHOR_COLUMNS)} FROM anchors ORDER BY seq").fetchall()
            except sqlite3.Error as exc:
                raise LedgerError(f"cannot read the ledger {self.path}: {exc}") from exc
        return [dict(zip(_ANCHOR_COLUMNS, values, strict=True)) for values in raw]

    def anchors(self, signer: str | None = None, holder: str | None = None) -> list[LedgerAnchor]:
        """Stored anchors, oldest first, optionally only those ``signer`` signed or ``holder`` holds."""
        fields = [f.name for f in dataclasses.fields(LedgerAnchor)]
        return [
            LedgerAnchor(**{k: row[k] for k in fields})
            for row in self._anchor_rows()
            if (signer is None or row["signer"] == signer) and (holder is None or row["holder"] == holder)
        ]

    def _hash_at(self, seq: int) -> str | None:
        with self._lock:
            try:
                row = self._db.execute("SELECT hash FROM disclosures WHERE seq = ?", (seq,)).fetchone()
            except sqlite3.Error as exc:
                raise LedgerError(f"cannot read the ledger {self.path}: {exc}") from exc
        return None if row is None else str(row[0])

    def holds_hash(self, hash_: str) -> bool:
        """Whether some disclosure row has this hash (or it is the genesis hash)."""
        if hash_ == GENESIS_HASH:
            return True
        with self._lock:
            try:
                row = self._db.execute("SELECT 1 FROM disclosures WHERE hash = ? LIMIT 1", (hash_,)).fetchone()
            except sqlite3.Error as exc:
                raise LedgerError(f"cannot read the ledger {self.path}: {exc}") from exc
        return row is not None

    def check_anchor(self, length: int, head: str, source: str) -> None:
        """Refuse this ledger if it lacks row ``length`` with hash ``head`` (truncated or rewritten).

        Looks up that one row: sound once :meth:`verify` has shown the chain intact (the runner
        verifies first), so checking many anchors costs one query each.
        """
        n = self.length()
        judge_anchor(n, self._hash_at(length) if 0 < length <= n else None, length, head, source)

    def export_json(self, path: str | os.PathLike[str], job_id: str | None = None) -> Path:
        """Write the ledger (or one job's rows) as JSON, atomically; returns the path.

        The whole chain is verified first, so an export never launders a tampered ledger.
        """
        self.verify()
        rows = self._rows(job_id)
        doc = {
            "format": "misuan-ledger",
            "version": 2,  # 2: with "party" and "anchors" (the anchors table, whole)
            "hash": "sha256 over canonical JSON of each row without 'hash'; see misuan.audit.ledger",
            "party": self.party,
            "job_id": job_id,
            "complete": job_id is None,  # a per-job export is a subset: its chain cannot be re-verified
            "rows": rows,
            "anchors": self._anchor_rows(),
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


class BatchingRecorder:
    """A :class:`DisclosureRecorder` that appends to ``ledger`` in batches: every ``max_batch`` rows or
    ``max_delay_s`` after the first pending one, and on :meth:`flush` and :meth:`close`. For a serving
    node, where one transaction per query would dominate the latency; the chain is the same."""

    def __init__(self, ledger: Ledger, max_batch: int = 256, max_delay_s: float = 0.2) -> None:
        self.ledger = ledger
        self.max_batch, self.max_delay_s = max_batch, max_delay_s
        self._pending: list[Disclosure] = []
        self._cond = threading.Condition()
        self._closed = False
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="misuan-ledger-batches", daemon=True)
        self._thread.start()

    def record(self, disclosure: Disclosure) -> None:
        with self._cond:
            if self._closed:
                raise LedgerError("the ledger's batching recorder is closed")
            if self.error is not None:
                raise LedgerError(f"the ledger cannot be written: {self.error}")
            self._pending.append(disclosure)
            if len(self._pending) >= self.max_batch:
                self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if self._pending and len(self._pending) < self.max_batch and not self._closed:
                    self._cond.wait(self.max_delay_s)
                batch, self._pending = self._pending, []
                done = self._closed
            if batch:
                try:
                    self.ledger.record_many(batch)
                except BaseException as exc:  # kept for the next record() to raise: never silently lost
                    with self._cond:
                        self.error = exc
                        self._pending = batch + self._pending
            if done:
                with self._cond:
                    if not self._pending or self.error is not None:
                        return

    def flush(self) -> None:
        """Write what is pending now, in this thread."""
        with self._cond:
            batch, self._pending = self._pending, []
        if batch:
            self.ledger.record_many(batch)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()
        self.flush()
