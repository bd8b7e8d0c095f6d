from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest

from misuan.audit.ledger import GENESIS_HASH, Ledger, verify_rows
from misuan.errors import LedgerError, LedgerTamperedError
from misuan.net.disclosure import Disclosure


def _d(i: int, job: str = "j1") -> Disclosure:
    return Disclosure(job, f"step{i}", "bank", "partner", "intersection size", (), "plaintext", {"count": i})


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    led = Ledger(tmp_path / "ledger.sqlite")
    for i in range(1, 6):
        led.record(_d(i))
    return led


def _raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def test_records_chain_and_read_back(ledger: Ledger) -> None:
    rows = ledger.entries()
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in zip(rows, rows[1:], strict=False))
    assert rows[2].step == "step3" and rows[2].detail == {"count": 3} and rows[2].shape == ()
    assert ledger.verify() == 5
    assert ledger.head() == rows[-1].hash


def test_hash_is_documented_canonical_json(ledger: Ledger) -> None:
    row = ledger.entries()[0].as_dict()
    body = {k: v for k, v in row.items() if k != "hash"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert hashlib.sha256(text.encode()).hexdigest() == row["hash"]


def test_edit_a_field_is_detected(ledger: Ledger) -> None:
    with _raw(ledger.path) as db:
        db.execute("UPDATE disclosures SET what = 'nothing' WHERE seq = 3")
    with pytest.raises(LedgerTamperedError, match=r"row #3 .*edited"):
        ledger.verify()


def test_edit_detail_json_is_detected(ledger: Ledger) -> None:
    with _raw(ledger.path) as db:
        db.execute("""UPDATE disclosures SET detail = '{"count":99}' WHERE seq = 2""")
    with pytest.raises(LedgerTamperedError, match=r"row #2"):
        ledger.verify()


def test_delete_a_row_is_detected(ledger: Ledger) -> None:
    with _raw(ledger.path) as db:
        db.execute("DELETE FROM disclosures WHERE seq = 2")
    with pytest.raises(LedgerTamperedError, match=r"row #2 has sequence number 3"):
        ledger.verify()


def test_delete_and_renumber_is_detected(ledger: Ledger) -> None:
    with _raw(ledger.path) as db:
        db.execute("DELETE FROM disclosures WHERE seq = 2")
        db.execute("UPDATE disclosures SET seq = seq - 1 WHERE seq > 2")
    with pytest.raises(LedgerTamperedError, match=r"row #2 does not link"):
        ledger.verify()


def test_swapped_rows_are_detected(ledger: Ledger) -> None:
    with _raw(ledger.path) as db:  # swap the contents of rows 2 and 4, keeping their numbers
        db.execute("UPDATE disclosures SET seq = -2 WHERE seq = 2")
        db.execute("UPDATE disclosures SET seq = 2 WHERE seq = 4")
        db.execute("UPDATE disclosures SET seq = 4 WHERE seq = -2")
    with pytest.raises(LedgerTamperedError, match=r"row #2"):
        ledger.verify()


def test_truncation_is_detected_against_a_kept_head(ledger: Ledger) -> None:
    head = ledger.head()
    with _raw(ledger.path) as db:
        db.execute("DELETE FROM disclosures WHERE seq = 5")
    assert ledger.verify() == 4  # the chain alone cannot show a removed tail ...
    with pytest.raises(LedgerTamperedError, match="removed from its end"):
        ledger.verify(expected_head=head)  # ... a head kept elsewhere can


def test_export_is_atomic_json_that_reverifies(ledger: Ledger, tmp_path: Path) -> None:
    out = ledger.export_json(tmp_path / "out" / "ledger.json")
    doc = json.loads(out.read_text())
    assert doc["format"] == "misuan-ledger" and doc["complete"] is True
    assert verify_rows(doc["rows"]) == 5
    assert [p.name for p in out.parent.iterdir()] == ["ledger.json"]  # no temp file left behind
    doc["rows"][1]["recipient"] = "someone else"
    with pytest.raises(LedgerTamperedError, match="row #2"):
        verify_rows(doc["rows"])


def test_export_filters_by_job_and_refuses_tampered(ledger: Ledger, tmp_path: Path) -> None:
    ledger.record(_d(6, job="j2"))
    doc = json.loads(ledger.export_json(tmp_path / "j2.json", job_id="j2").read_text())
    assert [r["job_id"] for r in doc["rows"]] == ["j2"] and doc["complete"] is False
    assert [e.seq for e in ledger.entries("j2")] == [6]
    with _raw(ledger.path) as db:
        db.execute("UPDATE disclosures SET form = 'ciphertext' WHERE seq = 1")
    with pytest.raises(LedgerTamperedError):
        ledger.export_json(tmp_path / "bad.json")
    assert not (tmp_path / "bad.json").exists()


def test_concurrent_records_from_threads_form_one_chain(tmp_path: Path) -> None:
    led = Ledger(tmp_path / "l.sqlite")
    other = Ledger(tmp_path / "l.sqlite")  # a second connection, as a second process would have

    def work(lg: Ledger, base: int) -> None:
        for i in range(25):
            lg.record(_d(base + i))

    threads = [threading.Thread(target=work, args=(lg, k * 100)) for k, lg in enumerate([led, led, other, other])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert led.verify() == 100
    assert len({e.step for e in led.entries()}) == 100


def test_numpy_detail_values_and_unrecordable_detail(tmp_path: Path) -> None:
    led = Ledger(tmp_path / "l.sqlite")
    led.record(Disclosure("j", "s", "a", "b", "x", (3,), "aggregate", {"n": np.int64(3), "t": np.float32(0.5)}))
    assert led.entries()[0].detail == {"n": 3, "t": 0.5}
    with pytest.raises(LedgerError, match="not recordable"):
        led.record(Disclosure("j", "s", "a", "b", "x", (), "plaintext", {"obj": object()}))
    assert led.verify() == 1


def test_unopenable_ledger_is_a_ledger_error(tmp_path: Path) -> None:
    (tmp_path / "dir.sqlite").mkdir()
    with pytest.raises(LedgerError, match="cannot open"):
        Ledger(tmp_path / "dir.sqlite")
