"""A node's feature store for online scoring: one SQLite file, indexed by normalised customer ID.

:func:`build_feature_store` reads a CSV (the same file format as a job's dataset), normalises the
IDs as the job's PSI step did, and writes the model's feature columns, in the model's order, as one
float64 row per ID; it builds a temporary file and renames it, so a node refreshing its store never
serves a half-written one (a running service reopens it on :meth:`FeatureStore.refresh`).
:meth:`FeatureStore.lookup` returns the rows of a batch of IDs in one query: NaN rows and
``known = False`` for the IDs it does not hold.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from misuan.errors import ConfigError, DataError
from misuan.protocols.psi import IdNormalization, coerce_ids, normalize_ids

__all__ = ["FeatureStore", "build_feature_store"]

_CHUNK = 500  # SQLite's parameter limit is far above; one IN (...) per chunk


def build_feature_store(
    csv: Path, out: Path, *, id_column: str, features: Sequence[str], normalization: IdNormalization,
) -> Path:
    """Write ``out`` from ``csv``: the ``features`` (numeric; empty cells are missing) of each normalised ID."""
    df = pd.read_csv(csv, dtype={id_column: str})
    missing = [c for c in [id_column, *features] if c not in df.columns]
    if missing:
        raise DataError(f"{csv.name} has no column(s) {missing} for the feature store")
    try:
        values = df[list(features)].apply(pd.to_numeric, errors="raise").to_numpy(dtype="<f8")
    except (TypeError, ValueError) as exc:
        raise DataError(f"{csv.name}: a feature column is not numeric ({exc})") from None
    ids = [k.decode("utf-8") for k in normalize_ids(coerce_ids(df[id_column]), normalization)]
    if len(set(ids)) != len(ids):
        raise DataError(f"{csv.name}: IDs repeat after normalisation; the store needs one row per customer")
    tmp = out.with_name(f".{out.name}.building-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    with contextlib.closing(sqlite3.connect(tmp)) as db:
        db.execute("CREATE TABLE features (id TEXT PRIMARY KEY, row BLOB NOT NULL) WITHOUT ROWID")
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.executemany("INSERT INTO features VALUES (?, ?)", ((i, v.tobytes()) for i, v in zip(ids, values, strict=True)))
        h = hashlib.sha256(csv.read_bytes()).hexdigest()
        meta = {"features": json.dumps(list(features)), "source": csv.name, "source_sha256": h,
                "built_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "rows": str(len(ids))}
        db.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
        db.commit()
    os.replace(tmp, out)
    return out


class FeatureStore:
    """Read side of a store; thread-safe (one connection per thread)."""

    def __init__(self, path: Path, features: Sequence[str]) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError(f"feature store {self.path} does not exist (build it with `misuan serve build-store`)")
        self._local = threading.local()
        self._generation = 0
        stored = json.loads(self._meta()["features"])
        if stored != list(features):
            raise ConfigError(f"feature store {self.path} holds columns {stored}, the model needs {list(features)}")
        self.features = list(features)

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None or getattr(self._local, "generation", -1) != self._generation:
            db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            self._local.db, self._local.generation = db, self._generation
        return db

    def _meta(self) -> dict[str, str]:
        with contextlib.closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)) as db:
            return dict(db.execute("SELECT key, value FROM meta").fetchall())

    def refresh(self) -> None:
        """Reopen the file (after a rebuild replaced it)."""
        self._generation += 1

    def lookup(self, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(rows in the model's column order, NaN for an unknown ID; which IDs are known)."""
        out = np.full((len(ids), len(self.features)), np.nan)
        known = np.zeros(len(ids), dtype=bool)
        where: dict[str, list[int]] = {}
        for i, key in enumerate(ids):
            where.setdefault(key, []).append(i)
        db = self._db()
        keys = list(where)
        for s in range(0, len(keys), _CHUNK):
            chunk = keys[s : s + _CHUNK]
            rows = db.execute(f"SELECT id, row FROM features WHERE id IN ({','.join('?' * len(chunk))})", chunk).fetchall()
            for key, blob in rows:
                v = np.frombuffer(blob, dtype="<f8")
                for i in where[key]:
                    out[i] = v
                    known[i] = True
        return out, known
