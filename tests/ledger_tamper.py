"""The ways issue #11's finding 1 changed a ledger unnoticed, as functions on its SQLite file.

Shared by the tamper test (tests/node/test_ledger_anchoring.py) and ``bench/hardening.py``: an
attacker with write access to a party's ``ledger.sqlite`` deletes the newest row, the newest 40 or
all rows, edits the newest row and recomputes its hash, or edits an older row and recomputes every
later hash, so that the chain alone still verifies.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

from misuan.audit.ledger import GENESIS_HASH, row_hash


def _rows(db: sqlite3.Connection) -> list[dict[str, object]]:
    cur = db.execute("SELECT * FROM disclosures ORDER BY seq")
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _rehash_from(db: sqlite3.Connection, first: int) -> None:
    """Recompute the hash of row ``first`` and of every later row, as a careful forger would."""
    rows = _rows(db)
    prev = rows[first - 2]["hash"] if first > 1 else GENESIS_HASH
    for row in rows[first - 1 :]:
        row["prev_hash"] = prev
        body = dict(row, shape=json.loads(str(row["shape"])), detail=json.loads(str(row["detail"])))
        row["hash"] = prev = row_hash(body)
        db.execute("UPDATE disclosures SET prev_hash = ?, hash = ? WHERE seq = ?", (row["prev_hash"], prev, row["seq"]))


def _delete_newest(n: int | None) -> Callable[[sqlite3.Connection], None]:
    def tamper(db: sqlite3.Connection) -> None:
        if n is None:
            db.execute("DELETE FROM disclosures")
        else:
            db.execute("DELETE FROM disclosures WHERE seq > (SELECT MAX(seq) FROM disclosures) - ?", (n,))

    return tamper


def _edit_and_rehash(which: str) -> Callable[[sqlite3.Connection], None]:
    def tamper(db: sqlite3.Connection) -> None:
        rows = _rows(db)
        seq = int(rows[-1]["seq"]) if which == "newest" else len(rows) // 3  # an older row, in the first job
        db.execute("UPDATE disclosures SET what = 'nothing happened' WHERE seq = ?", (seq,))
        _rehash_from(db, seq)

    return tamper


TAMPERS = {
    "delete the newest row": _delete_newest(1),
    "delete the newest 40 rows": _delete_newest(40),
    "delete all rows": _delete_newest(None),
    "edit the newest row, recompute its hash": _edit_and_rehash("newest"),
    "edit an older row, recompute every later hash": _edit_and_rehash("older"),
}


def tamper(path: Path, how: Callable[[sqlite3.Connection], None]) -> None:
    """Apply one of :data:`TAMPERS` to the ledger at ``path``."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        how(db)
    finally:
        db.close()
