"""A cost model from small runs, checked against a large one: wall time and memory per party as the rows grow.

    python bench/scale.py psi                       # fit on 250k / 500k / 1M, predict 10M and 100M, check 10M
    python bench/scale.py secureboost               # fit on 5k / 10k / 20k rows, predict 100k and 1M, check 100k
    python bench/scale.py secureboost-he            # HE histograms, 3 trees of depth 3: fit on 25k / 50k / 100k, check 1M
    python bench/scale.py psi --check 0             # fit and predict only

The model is the simplest that the protocols' structure justifies, fitted by least squares on runs at
small sizes on this machine (both parties as separate processes over gRPC + mTLS, sharing its cores):

- **PSI** (``kkrt_psi_spilled`` from Parquet, ``bench/psi_spill.py``): wall = a + b n (every ID is
  read, digested, spilled and run through one bucket's OPRF once); peak memory per party = the 1M
  run's (one chunk and one full bucket: more rows make more buckets, not bigger ones) plus 8 bytes
  per shared row of the result.
- **SecureBoost with OT histograms** (``bench/secureboost.py``'s data, 10 trees of depth 5): wall =
  a + b n (the OT extension and every tree's pad passes are linear in rows x cells); memory per side
  = base + 16 bytes per (row, feature, bin) of OT keys (exact, from the code) plus the measured
  base. Where the keys pass the 2 GiB limit, ``histograms = "auto"`` falls back to HE: the model
  says so instead of extrapolating the OT line.
- **SecureBoost with HE histograms** (what ``auto`` takes there; 3 trees of depth 3, the figure
  ``bench/stream_job.py`` measures inside a whole job at 1M): wall = a + b n (one encryption per
  training row and tree, ciphertext multiplications per row, feature and level); memory of the
  party process = a + b n (the tree's ciphertexts, a bin code per feature and the gradients per row).

Printed: the fitted coefficients, the predictions, and (``--check N``, default 10M for PSI and 100k
for SecureBoost) the measured figure beside its prediction, with the CPU and load average. The
predictions are for this machine's cores; the parties' work is single-threaded numpy and OpenSSL
(OT paths), so more cores per party do not shorten it, but more machines per party would (the
issue's Ray item, not built).
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench.machine import cpu_line, load_line  # noqa: E402
from misuan.net.local import run_local  # noqa: E402

PARTIES = ("bank", "partner")


def fit(ns: list[int], ys: list[float]) -> tuple[float, float]:
    """Least-squares ``y = a + b n``."""
    b, a = np.polyfit(np.asarray(ns, float), np.asarray(ys, float), 1)
    return float(a), float(b)


def psi_run(rows: int, root: Path) -> tuple[float, float]:
    from bench.psi_spill import spilled_run, write_ids

    d = root / f"psi-{rows}"
    d.mkdir(parents=True, exist_ok=True)
    paths = write_ids(d, rows)
    t0 = time.perf_counter()
    out = run_local({p: functools.partial(spilled_run, party=p, path=paths[p], workdir=d / f"work-{p}", kill_after=-1)
                     for p in PARTIES}, transport="processes", job_id="scale-psi")
    wall = time.perf_counter() - t0
    return wall, max(out[p].max_rss_bytes for p in PARTIES) / 2**30


def secureboost_run(rows: int, histograms: str = "ot") -> tuple[float, float]:
    from bench import secureboost as sgb

    trees, depth = (10, 5) if histograms == "ot" else (3, 3)
    args = argparse.Namespace(rows=rows, trees=trees, depth=depth, lr=0.3, max_bin=32, key_bits=2048, scheme="ou",
                              n_jobs=None, histograms=histograms, profile=False, transport="grpc")
    fns = {p: functools.partial(sgb._party, p, args=args) for p in PARTIES}
    out = run_local(fns, transport="processes", job_id="scale-sgb", timeout_s=3600, connect_timeout_s=60)
    return out["bank"].result["train_s"], max(out[p].max_rss_bytes for p in PARTIES) / 2**30


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("protocol", choices=["psi", "secureboost", "secureboost-he"])
    ap.add_argument("--check", type=int, default=None, help="rows of the checking run (0: none)")
    args = ap.parse_args()
    print(f"bench/scale.py {args.protocol}: {cpu_line()}; {load_line()} (start)")
    root = Path(tempfile.mkdtemp(prefix="misuan-scale-"))
    if args.protocol == "psi":
        sizes, targets, check = [250_000, 500_000, 1_000_000], [10_000_000, 100_000_000], 10_000_000
        run = functools.partial(psi_run, root=root)
    elif args.protocol == "secureboost":
        sizes, targets, check = [5_000, 10_000, 20_000], [100_000, 1_000_000], 100_000
        run = secureboost_run
    else:
        sizes, targets, check = [25_000, 50_000, 100_000], [1_000_000, 10_000_000], 1_000_000
        run = functools.partial(secureboost_run, histograms="he")
    check = check if args.check is None else args.check
    walls, mems = [], []
    for n in sizes:
        w, m = run(n)
        walls.append(w)
        mems.append(m)
        print(f"  measured {n:>11,} rows: wall {w:7.1f} s, peak memory per party {m:.2f} GiB")
    a, b = fit(sizes, walls)
    print(f"  model: wall = {a:.2f} s + {b * 1e6:.2f} s per million rows")
    for n in sorted(set(targets) | ({check} if check else set())):
        pred_w = a + b * n
        if args.protocol == "psi":
            pred_m = mems[-1] + 8 * n / 2 / 2**30  # one full bucket (the 1M run), plus the result's rows (half shared)
            note = ""
        elif args.protocol == "secureboost-he":
            ma, mb = fit(sizes, mems)
            pred_m, note = ma + mb * n, ""
        else:
            keys = 0.8 * n * 25 * 33 * 16 / 2**30  # 80% training rows, 25 partner features, 33 cells each
            pred_m = min(mems) + keys
            note = "; past the 2 GiB of OT keys: auto takes HE here, the OT line does not apply" if keys > 2 else ""
        line = f"  predicted {n:>11,} rows: wall {pred_w:7.1f} s, memory per party {pred_m:.2f} GiB{note}"
        if n == check and check:
            w, m = run(n)
            line += f"   | measured: wall {w:.1f} s ({(w - pred_w) / pred_w:+.0%}), memory {m:.2f} GiB"
        print(line)
    print(f"  {load_line()} (end)")


if __name__ == "__main__":
    main()
