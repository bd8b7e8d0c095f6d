"""PSI from Parquet files beyond memory: KKRT-PSI over spilled buckets, against the in-memory run, and a killed run resumed.

    python bench/psi_spill.py --rows 10000000              # 10M x 10M: spilled, then in memory, same IDs
    python bench/psi_spill.py --rows 10000000 --kill-after 3 --no-baseline   # kill the partner after bucket 3, resume

Each party's IDs (random 16-digit numbers, 50% shared) are written to a Parquet file (row groups
of 262,144) before the clock starts. Each party is a separate process (gRPC + mutual TLS on
loopback); it streams its ID column with ``misuan.node.sources.iter_frames`` (262,144 rows at a
time), normalises the IDs as the PSI step does, and runs ``kkrt_psi_spilled`` (``protocols/kkrt/spill.py``)
with its work directory on disk. The baseline in the same run is ``kkrt_psi``, the in-memory path
the PSI step uses today, on the same files (the whole column read, then encoded and digested).
Printed: wall time (party processes started to both results), each party's peak resident memory,
the intersection's size and whether its IDs equal the plaintext intersection on both sides, the CPU
model and the load average. ``--kill-after K`` ends the partner's process abruptly (``os._exit``)
once bucket ``K`` is saved, then starts both parties again on the same work directories and checks
that the resumed run finishes with the same intersection without reading the IDs again.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench.machine import cpu_line, load_line  # noqa: E402
from misuan.net.local import run_local  # noqa: E402

PARTIES = ("bank", "partner")
CHUNK = 1 << 18  # IDs read, normalised and digested at a time


def write_ids(root: Path, rows: int, overlap: float = 0.5, seed: int = 11, *, label: str | None = None,
              expected: bool = True) -> dict[str, Path]:
    """Each party's Parquet file of ``rows`` distinct 16-digit IDs, ``overlap * rows`` of them shared,
    written a row group at a time; ``label``: the bank's file also has a random 0/1 column of that name;
    ``expected``: write the intersection's size and digest to ``expected.txt``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    shared = int(rows * overlap)
    pool = rng.integers(10**15, 10**16, size=int(2.2 * rows), dtype=np.int64)
    pool.sort()  # distinct values by sort in place (np.unique's hash table is far slower and larger here)
    pool = pool[np.concatenate(([True], pool[1:] != pool[:-1]))]
    rng.shuffle(pool)
    common, rest = pool[:shared], pool[shared:]
    sets = {"bank": np.concatenate([common, rest[: rows - shared]]),
            "partner": np.concatenate([common, rest[rows - shared : 2 * (rows - shared)]])}
    paths = {}
    for p, ids in sets.items():
        rng.shuffle(ids)
        paths[p] = root / f"{p}.parquet"
        writer = None
        for a in range(0, rows, CHUNK):
            cols = {"customer_id": pa.array(ids[a : a + CHUNK].astype(str))}
            if label is not None and p == "bank":
                cols[label] = pa.array(rng.integers(0, 2, len(cols["customer_id"])))
            table = pa.table(cols)
            writer = writer or pq.ParquetWriter(paths[p], table.schema)
            writer.write_table(table, row_group_size=CHUNK)
        if writer is not None:
            writer.close()
    if expected:
        digest = hashlib.sha256(b"".join(sorted(str(v).encode() for v in common.tolist()))).hexdigest()
        (root / "expected.txt").write_text(f"{shared} {digest}\n")
    return paths


def _normalised_chunks(path: Path, counter: list[int] | None = None) -> Any:
    from misuan.node.sources import SourceSpec, iter_frames
    from misuan.protocols.psi import IdNormalization, normalize_ids

    norm = IdNormalization()
    src = SourceSpec("parquet", path=path)

    def gen() -> Any:
        if counter is not None:
            counter.append(1)
        start = 0
        for frame in iter_frames(src, columns=["customer_id"], chunk_rows=CHUNK, id_column="customer_id"):
            values = frame["customer_id"].tolist()
            yield normalize_ids(values, norm, range(start, start + len(values)))
            start += len(values)
    return gen, norm.canonical()


def _shared_digest(path: Path, rows: np.ndarray) -> str:
    import pyarrow.parquet as pq

    ids = pq.read_table(path, columns=["customer_id"]).column(0).to_numpy(zero_copy_only=False)
    return hashlib.sha256(b"".join(sorted(str(v).encode() for v in ids[rows].tolist()))).hexdigest()


def _kill_hook(b: int, after: int) -> None:
    if b == after:
        os._exit(9)  # as a kill: no cleanup, no goodbye


def spilled_run(chan: Any, party: str, path: Path, workdir: Path, kill_after: int) -> dict[str, Any]:
    """One party of the spilled run (a module-level function: party processes are spawned)."""
    import pyarrow.parquet as pq

    from misuan.protocols.kkrt.spill import kkrt_psi_spilled

    n = pq.ParquetFile(path).metadata.num_rows
    reads: list[int] = []
    chunks, norm = _normalised_chunks(path, reads)
    peer = "partner" if party == "bank" else "bank"
    hook = functools.partial(_kill_hook, after=kill_after) if kill_after >= 0 else None
    t0 = time.perf_counter()
    res = kkrt_psi_spilled(chan, chunks, n, peer, workdir, reveal="both", normalization=norm, on_bucket=hook)
    return {"seconds": time.perf_counter() - t0, "rows": res.local_rows, "reads": len(reads)}


def memory_run(chan: Any, party: str, path: Path) -> dict[str, Any]:
    """One party of the baseline: the whole column read, encoded and digested in memory (kkrt_psi)."""
    import pyarrow.parquet as pq

    from misuan.protocols.kkrt import encode_ids, kkrt_psi

    peer = "partner" if party == "bank" else "bank"
    t0 = time.perf_counter()
    chunks, norm = _normalised_chunks(path)
    values = [v for chunk in chunks() for v in chunk]
    assert len(values) == pq.ParquetFile(path).metadata.num_rows
    res = kkrt_psi(chan, [encode_ids(values)], peer, reveal="both", normalization=norm)
    return {"seconds": time.perf_counter() - t0, "rows": res.local_rows, "reads": 1}


def report(name: str, out: dict[str, Any], wall: float, paths: dict[str, Path], expected: str) -> None:
    size, digest = expected.split()
    ok = all(len(out[p].result["rows"]) == int(size) and _shared_digest(paths[p], out[p].result["rows"]) == digest
             for p in PARTIES)
    rss = ", ".join(f"{p} {out[p].max_rss_bytes / 2**30:.2f} GiB" for p in PARTIES)
    print(f"  {name}: wall {wall:.1f} s; peak memory {rss}; intersection {len(out['bank'].result['rows'])} "
          f"({'equal to the plaintext intersection on both sides' if ok else 'WRONG'}); "
          f"IDs read {out['bank'].result['reads']}x / {out['partner'].result['reads']}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--kill-after", type=int, default=-1, help="kill the partner after this bucket, then resume")
    ap.add_argument("--no-baseline", action="store_true", help="skip the in-memory kkrt_psi run")
    ap.add_argument("--dir", type=Path, default=None, help="where the Parquet files and spills go (default: a temp dir)")
    args = ap.parse_args()
    root = args.dir or Path(tempfile.mkdtemp(prefix="misuan-psi-spill-"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"PSI from Parquet, {args.rows:,} x {args.rows:,} IDs, 50% shared, 2 processes over gRPC + mTLS")
    print(f"  {cpu_line()}")
    print(f"  {load_line()} (before)")
    t0 = time.perf_counter()
    paths = write_ids(root, args.rows)
    expected = (root / "expected.txt").read_text()
    print(f"  wrote the Parquet files in {time.perf_counter() - t0:.1f} s ({paths['bank'].stat().st_size / 2**20:.0f} MiB each)")
    work = {p: root / f"work-{p}" for p in PARTIES}
    for w in work.values():
        shutil.rmtree(w, ignore_errors=True)
    if args.kill_after >= 0:
        t0 = time.perf_counter()
        try:
            run_local({p: functools.partial(spilled_run, party=p, path=paths[p], workdir=work[p],
                                            kill_after=args.kill_after if p == "partner" else -1) for p in PARTIES},
                      transport="processes", job_id="psi-spill")
        except Exception as exc:  # the killed party, and its peer's lost link
            print(f"  killed run: stopped after {time.perf_counter() - t0:.1f} s ({type(exc).__name__}); "
                  f"buckets kept: {sorted(f.name for f in work['partner'].glob('kkrt-spill/shared-*.bin'))}")
    t0 = time.perf_counter()
    out = run_local({p: functools.partial(spilled_run, party=p, path=paths[p], workdir=work[p], kill_after=-1)
                     for p in PARTIES}, transport="processes", job_id="psi-spill")
    report("spilled" + (" (resumed)" if args.kill_after >= 0 else ""), out, time.perf_counter() - t0, paths, expected)
    if not args.no_baseline:
        t0 = time.perf_counter()
        base = run_local({p: functools.partial(memory_run, party=p, path=paths[p]) for p in PARTIES},
                         transport="processes", job_id="psi-memory")
        report("in memory (kkrt_psi, baseline)", base, time.perf_counter() - t0, paths, expected)
    print(f"  {load_line()} (after)")
    if args.dir is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
