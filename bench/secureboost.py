"""SecureBoost benchmark: two parties as separate processes over gRPC + mutual TLS on loopback.

Data: ``sklearn.datasets.make_classification(n_samples=ROWS, n_features=50, random_state=0)`` with
sklearn's other defaults (n_informative=2, n_redundant=2, ...); 80/20 split (``train_test_split``,
random_state=0); the bank (label party) holds features 0-24 and the labels, the partner 25-49.
Model: 10 trees, depth 5, learning rate 0.3, lambda 1, gamma 0, min_child_weight 1, max_bin 32,
base_score 0.5. Baseline in the same run: plaintext XGBoost (``tree_method="hist"``, the same
hyperparameters, all 50 features, ``n_jobs=2``).

    python bench/secureboost.py                     # 100k rows
    python bench/secureboost.py --rows 10000
    python bench/secureboost.py --transport memory  # both parties in one process (threads)
    python bench/secureboost.py --profile           # cProfile of each party's main process
    python bench/secureboost.py --histograms he     # histograms by HE (default: auto, i.e. OT here)

Prints the CPU and the load average, training wall time (label party: channel open to model done),
test AUC, per-phase times, bytes on the wire, and the XGBoost time and AUC.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import io
import pstats
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import cpu_line, load_line  # noqa: E402
from misuan.protocols import secureboost as sb  # noqa: E402


def _data(rows: int) -> tuple[np.ndarray, ...]:
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split

    X, y = make_classification(n_samples=rows, n_features=50, random_state=0)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=0)
    return Xtr, Xte, ytr.astype(float), yte.astype(float)


def _party(party: str, chan: Any, args: argparse.Namespace) -> dict[str, Any]:
    Xtr, Xte, ytr, _ = _data(args.rows)
    params = sb.SecureBoostParams(
        n_estimators=args.trees, max_depth=args.depth, learning_rate=args.lr, max_bin=args.max_bin,
        base_score=0.5, key_bits=args.key_bits, he_scheme=args.scheme, n_jobs=args.n_jobs, histograms=args.histograms,
    )
    prof = cProfile.Profile() if args.profile else None
    if prof:
        prof.enable()
    t0 = time.perf_counter()
    if party == "bank":
        res = sb.train_label_party(chan, Xtr[:, :25], ytr, ["partner"], params)
        train_s = time.perf_counter() - t0
        margin = sb.predict_label_party(chan, res.model, Xte[:, :25])
    else:
        res = sb.train_feature_party(chan, Xtr[:, 25:], "bank", params)
        train_s = time.perf_counter() - t0
        sb.predict_feature_party(chan, res.model, Xte[:, 25:])
        margin = None
    usage = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    cpu = sum(u.ru_utime + u.ru_stime for u in usage)  # this party's process and its (joined) workers
    out: dict[str, Any] = {"train_s": train_s, "cpu_s": cpu, "history": res.history, "margin": margin, "stats": chan.stats.as_dict()}
    if prof:
        prof.disable()
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(18)
        out["profile"] = buf.getvalue()
    return out


def run_local_parties(args: argparse.Namespace) -> dict[str, Any]:
    """Both parties through the local-run harness: processes over gRPC + mTLS, or threads in memory."""
    from misuan.net.local import run_local

    transport = "processes" if args.transport == "grpc" else "threads"
    fns = {p: functools.partial(_party, p, args=args) for p in ("bank", "partner")}
    out = run_local(fns, transport=transport, job_id="bench-sgb", timeout_s=3600, connect_timeout_s=60)
    return {p: o.result for p, o in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--trees", type=int, default=10)
    ap.add_argument("--depth", type=int, default=5)
    ap.add_argument("--lr", type=float, default=0.3)
    ap.add_argument("--max-bin", type=int, default=32)
    ap.add_argument("--key-bits", type=int, default=2048)
    ap.add_argument("--scheme", choices=["ou", "paillier"], default="ou", help="HE scheme (--histograms he)")
    ap.add_argument("--histograms", choices=["auto", "ot", "he"], default="auto")
    ap.add_argument("--n-jobs", type=int, default=None, help="worker processes per party (default: every core)")
    ap.add_argument("--transport", choices=["grpc", "memory"], default="grpc")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()

    import xgboost as xgb
    from sklearn.metrics import roc_auc_score

    Xtr, Xte, ytr, yte = _data(args.rows)
    t0 = time.perf_counter()
    ref = xgb.XGBClassifier(n_estimators=args.trees, max_depth=args.depth, learning_rate=args.lr, tree_method="hist",
                            max_bin=args.max_bin, reg_lambda=1.0, gamma=0.0, min_child_weight=1.0, base_score=0.5, n_jobs=2)
    ref.fit(Xtr, ytr)
    xgb_s = time.perf_counter() - t0
    xgb_auc = roc_auc_score(yte, ref.predict_proba(Xte)[:, 1])

    t0 = time.perf_counter()
    res = run_local_parties(args)
    wall = time.perf_counter() - t0
    bank, partner = res["bank"], res["partner"]
    auc = roc_auc_score(yte, bank["margin"])
    hist = bank["history"]
    phase = {k: sum(h.get(k, 0.0) for h in hist) for k in ("encrypt", "wait_histograms", "decrypt", "split_finding")}
    fp_hist = sum(h.get("histogram_seconds", 0.0) for h in partner["history"])
    method = f"HE {args.scheme.upper()} {args.key_bits}-bit" if args.histograms == "he" else f"histograms {args.histograms}"
    print(f"SecureBoost benchmark: {args.rows} rows ({len(ytr)} train / {len(yte)} test), 50 features (25 + 25), "
          f"{args.trees} trees, depth {args.depth}, eta {args.lr}, max_bin {args.max_bin}, {method}, "
          f"transport {args.transport}, n_jobs {args.n_jobs or 'all cores'}")
    print(f"  {cpu_line()}")
    print(f"  {load_line()} (after the run)")
    print(f"  SecureBoost  train {bank['train_s']:8.2f} s   test AUC {auc:.4f}   (whole run incl. process start and prediction {wall:.1f} s)")
    print(f"  XGBoost      train {xgb_s:8.2f} s   test AUC {xgb_auc:.4f}")
    print(f"  ratio time {bank['train_s'] / xgb_s:.0f}x   AUC difference {auc - xgb_auc:+.4f}")
    per_tree = [round(h["seconds"], 2) for h in hist]
    print(f"  per tree (s): {per_tree}")
    setup = bank["train_s"] - sum(h["seconds"] for h in hist)
    print(f"  label party phases (s): setup (keys / OT extension) {setup:.2f}, encrypt or pad {phase['encrypt']:.2f}, "
          f"waiting for histograms {phase['wait_histograms']:.2f}, decrypt or unpad {phase['decrypt']:.2f}, "
          f"split finding {phase['split_finding']:.2f}")
    print(f"  feature party histograms (share sums, or ciphertext sums + packing + re-randomising) {fp_hist:.2f} s")
    if args.transport == "grpc":
        cpu = bank["cpu_s"] + partner["cpu_s"]
        print(f"  CPU time (both parties with their workers, incl. data generation and prediction): {cpu:.1f} s "
              f"= {cpu / 2:.1f} s on 2 idle cores; the machine's load average during the run inflates wall time")
    st = bank["stats"]
    print(f"  bytes: label party sent {st['bytes_sent'] / 1e6:.1f} MB, received {st['bytes_received'] / 1e6:.1f} MB, rounds {st['rounds']}")
    if args.profile:
        for p in ("bank", "partner"):
            print(f"--- cProfile {p} (main process; worker processes not included) ---")
            print(res[p]["profile"])


if __name__ == "__main__":
    main()
