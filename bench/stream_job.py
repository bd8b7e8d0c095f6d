"""A whole job (PSI, WOE/IV, SecureBoost) on 1M rows x 50 features from PostgreSQL: streamed against in memory.

    python bench/stream_job.py                       # 1M rows, 25 + 25 features, both modes
    python bench/stream_job.py --rows 100000 --modes stream
    python bench/stream_job.py --psi-only --rows 10000000   # the psi step alone, 10M x 10M from Parquet files

Starts a throwaway PostgreSQL server (Debian's ``postgresql`` package, as the tests do), loads the
bank's table (ID, label, 25 features) and the partner's (ID, 25 features) with ``COPY`` (all rows
shared, in another order), then runs the job spec below with every party a separate process over
gRPC + mutual TLS (``misuan.net.local``), once per mode:

- ``stream``: ``stream = true`` in both datasets: rows checked a chunk (65,536 rows) at a time into
  columns on local disk; PSI with ``spill = true`` (KKRT buckets spilled to disk); WOE and SecureBoost bin one column at
  a time and keep only bin codes (``misuan.node.column_store``);
- ``memory``: the same job with the whole table in a DataFrame (the path of every earlier run).

``--psi-only``: a job of the ``psi`` step alone on ``bench/psi_spill.py``'s Parquet files (random
16-digit IDs, 50% shared), with and without ``stream``.

Printed per mode: wall time and each step's seconds, each party's peak resident memory, and whether
the outputs (IV per feature, SecureBoost's feature importance, the model parts' splits) are equal
between the modes. Then the CPU model and the load average.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import os
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench.machine import cpu_line, load_line  # noqa: E402
from bench.pg_server import postgres_server  # noqa: E402

PARTIES = ("bank", "partner")


def make_tables(url: str, rows: int, features: int, seed: int = 5) -> None:
    """The bank's and partner's tables: a logistic model on all 2 x ``features`` columns, 5% missing."""
    import psycopg

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 2 * features)).astype(np.float32).astype(np.float64)
    w = rng.normal(scale=0.4, size=2 * features) * (rng.random(2 * features) < 0.5)
    y = (rng.random(rows) < 1 / (1 + np.exp(-(X @ w - 1.5)))).astype(np.int64)
    X[rng.random(X.shape) < 0.05] = np.nan
    ids = np.array([f"C{i:09d}" for i in rng.permutation(rows)])
    order = rng.permutation(rows)  # the partner's rows in another order
    bank = pd.DataFrame({"customer_id": ids, "default": y, **{f"b{j:02d}": X[:, j] for j in range(features)}})
    partner = pd.DataFrame({"customer_id": ids[order], **{f"p{j:02d}": X[order, features + j] for j in range(features)}})
    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur:
        for name, df in (("bank_customers", bank), ("partner_customers", partner)):
            types = {"O": "text", "U": "text", "f": "double precision", "i": "bigint"}
            cols = ", ".join(f'"{c}" {types[df[c].dtype.kind]}' for c in df.columns)
            cur.execute(f"DROP TABLE IF EXISTS {name}; CREATE TABLE {name} ({cols})")
            with cur.copy(f"COPY {name} FROM STDIN (FORMAT csv)") as copy:
                for a in range(0, rows, 100_000):
                    buf = io.StringIO()
                    df.iloc[a : a + 100_000].to_csv(buf, index=False, header=False, float_format="%.9g")
                    copy.write(buf.getvalue())


def job_text(bank_source: str, partner_source: str, stream: bool, job: str, steps: str) -> str:
    """A two-party job spec: the bank's and partner's dataset sources (TOML fields), then ``steps``."""
    flag = ", stream = true" if stream else ""
    return textwrap.dedent(f"""\
        version = 1
        [job]
        id = "{job}"
        timeout_s = 3600
        [[party]]
        name = "bank"
        role = "label_party"
        address = "127.0.0.1:7001"
        dataset = {{ {bank_source}, id_column = "customer_id", label_column = "default"{flag} }}
        [[party]]
        name = "partner"
        role = "feature_party"
        address = "127.0.0.1:7002"
        dataset = {{ {partner_source}, id_column = "customer_id"{flag} }}
        """) + textwrap.dedent(steps)


def spec_text(url: str, stream: bool, job: str, trees: int, depth: int) -> str:
    return job_text(
        f'postgres = "{url}", query = "SELECT * FROM bank_customers ORDER BY customer_id"',
        f'postgres = "{url}", table = "partner_customers"', stream, job, f"""
        [[step]]
        kind = "psi"
        params = {{ reveal = "both"{", spill = true" if stream else ""} }}
        [[step]]
        kind = "woe"
        params = {{ n_bins = 10, method = "quantile", include_own = true }}
        [[step]]
        kind = "secureboost"
        params = {{ n_estimators = {trees}, max_depth = {depth}, learning_rate = 0.3, test_fraction = 0.3 }}
        """)


def _tree_rss(root: int) -> int:
    """Resident bytes of process ``root`` and all its descendants (HE worker processes included)."""
    parent: dict[int, int] = {}
    rss: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            parent[int(d.name)], rss[int(d.name)] = int(fields[1]), int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            continue
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += [c for c, p in parent.items() if p == pid]
    return total


class _MemorySampler:
    """Peak resident memory of this process tree, per phase (the job's steps), sampled every 0.2 s."""

    def __init__(self) -> None:
        self.phase = "check"
        self.peaks: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.peaks[self.phase] = max(self.peaks.get(self.phase, 0), _tree_rss(os.getpid()))

    def progress(self, msg: str) -> None:
        if " ..." in msg and " step " in msg:  # "[bank] step 2/3 woe (woe) ..."
            self.phase = msg.split(" step ", 1)[1].split()[1]

    def stop(self) -> dict[str, int]:
        self._stop.set()
        self._thread.join()
        return self.peaks


def psi_spec_text(paths: dict[str, Path], stream: bool, job: str) -> str:
    spill = ", spill = true" if stream else ""
    steps = f"""
        [[step]]
        kind = "psi"
        params = {{ reveal = "both"{spill} }}
        """
    return job_text(f'path = "{paths["bank"]}"', f'path = "{paths["partner"]}"', stream, job, steps)


def party_run(open_channel: Any, spec_path: Path, party: str, party_dir: Path) -> dict[str, Any]:
    """One party's whole job (a module-level function: the party processes are spawned)."""
    from misuan.node.runner import check_runnable, run_party
    from misuan.node.spec import load_spec

    t0 = time.perf_counter()
    sampler = _MemorySampler()
    spec = load_spec(spec_path)
    checked = check_runnable(spec, party)  # reading the source and checking it: the "check" phase
    out = run_party(spec, party, party_dir=party_dir, open_channel=open_channel, progress=sampler.progress,
                    checked=checked)
    model_file = out.job_dir / "artefacts" / "secureboost" / "model.json"
    model = json.loads(model_file.read_text())["model"] if model_file.is_file() else None
    return {"seconds": time.perf_counter() - t0, "outputs": out.outputs, "model": model, "peaks": sampler.stop()}


def comparable(result: dict[str, Any]) -> Any:
    """What must be equal between the modes: IVs, importance, splits (gains to 9 digits: the streamed
    PSI lists the rows in another order, so float sums add in another order)."""
    def rounded(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: rounded(v) for k, v in x.items() if k not in ("seconds", "history", "timings", "rows")}
        if isinstance(x, float):
            return float(f"{x:.9g}")
        return [rounded(v) for v in x] if isinstance(x, list) else x
    outs = result["outputs"]
    return rounded({"woe": outs["woe"], "secureboost": outs["secureboost"], "model": result["model"]})


def psi_only(args: argparse.Namespace) -> None:
    from bench.psi_spill import write_ids
    from misuan.net.local import run_local_openers

    print(f"The psi step alone, {args.rows:,} x {args.rows:,} IDs from Parquet (50% shared), 2 processes over gRPC + mTLS")
    print(f"  {cpu_line()}")
    print(f"  {load_line()} (before)")
    with tempfile.TemporaryDirectory(prefix="misuan-psi-job-") as tmp:
        t0 = time.perf_counter()
        paths = write_ids(Path(args.dir or tmp), args.rows, label="default", expected=False)
        print(f"  wrote the Parquet files in {time.perf_counter() - t0:.1f} s")
        for mode in args.modes.split(","):
            root = Path(tmp) / mode
            root.mkdir()
            spec_path = root / "job.toml"
            spec_path.write_text(psi_spec_text(paths, mode == "stream", f"psi-{mode}"))
            t0 = time.perf_counter()
            out = run_local_openers(
                {p: functools.partial(party_run, spec_path=spec_path, party=p, party_dir=root / p) for p in PARTIES},
                transport="processes", job_id=f"psi-{mode}", timeout_s=3600, connect_timeout_s=3600,
            )
            wall = time.perf_counter() - t0
            res = {p: out[p].result for p in PARTIES}
            rss = ", ".join(f"{p} {out[p].max_rss_bytes / 2**30:.2f} GiB" for p in PARTIES)
            psi = res["bank"]["outputs"]["psi"]
            print(f"  {mode}: wall {wall:.1f} s (psi step {psi['seconds']:.1f} s); peak memory {rss}; shared {psi['size']:,}")
            for p in PARTIES:
                shown = ", ".join(f"{k} {v / 2**30:.2f}" for k, v in res[p]["peaks"].items())
                print(f"    {p}: peak GiB by phase: {shown}")
    print(f"  {load_line()} (after)")


def main() -> None:
    from misuan.net.local import run_local_openers

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--features", type=int, default=25, help="features per party")
    ap.add_argument("--trees", type=int, default=3)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--modes", default="stream,memory")
    ap.add_argument("--psi-only", action="store_true", help="the psi step alone, from Parquet files")
    ap.add_argument("--dir", default=None, help="where the Parquet files go (default: a temporary directory)")
    args = ap.parse_args()
    if args.psi_only:
        psi_only(args)
        return
    print(f"Job from PostgreSQL: {args.rows:,} rows x {2 * args.features} features (bank {args.features} + label, "
          f"partner {args.features}); PSI, WOE, SecureBoost {args.trees} trees depth {args.depth}; "
          "2 processes over gRPC + mTLS")
    print(f"  {cpu_line()}")
    print(f"  {load_line()} (before)")
    results: dict[str, dict[str, Any]] = {}
    with postgres_server() as url, tempfile.TemporaryDirectory(prefix="misuan-stream-job-") as tmp:
        t0 = time.perf_counter()
        make_tables(url, args.rows, args.features)
        print(f"  loaded the two tables in {time.perf_counter() - t0:.1f} s")
        for mode in args.modes.split(","):
            root = Path(tmp) / mode
            root.mkdir()
            spec_path = root / "job.toml"
            spec_path.write_text(spec_text(url, mode == "stream", f"bench-{mode}", args.trees, args.depth))
            t0 = time.perf_counter()
            out = run_local_openers(
                {p: functools.partial(party_run, spec_path=spec_path, party=p, party_dir=root / p) for p in PARTIES},
                transport="processes", job_id=f"bench-{mode}", timeout_s=3600,
            )
            wall = time.perf_counter() - t0
            results[mode] = {p: out[p].result for p in PARTIES}
            steps = results[mode]["bank"]["outputs"]
            rss = ", ".join(f"{p} {out[p].max_rss_bytes / 2**30:.2f} GiB" for p in PARTIES)
            timing = ", ".join(f"{s} {steps[s]['seconds']:.1f} s" for s in ("psi", "woe", "secureboost"))
            print(f"  {mode}: wall {wall:.1f} s (the bank's steps: {timing}); peak memory of the party process "
                  f"{rss}; shared {steps['psi']['size']:,}")
            for p in PARTIES:
                peaks = results[mode][p]["peaks"]
                shown = ", ".join(f"{k} {v / 2**30:.2f}" for k, v in peaks.items())
                print(f"    {p}: peak GiB of its processes (worker processes included), by phase: {shown}")
        if len(results) == 2:
            same = all(comparable(results["stream"][p]) == comparable(results["memory"][p]) for p in PARTIES)
            print(f"  outputs equal between the modes (IVs, importance, the trees' splits): {same}")
    print(f"  {load_line()} (after)")


if __name__ == "__main__":
    main()
