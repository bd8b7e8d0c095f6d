"""SecureBoost benchmark: two parties as separate processes over gRPC + mutual TLS on loopback.

Data: ``sklearn.datasets.make_classification(n_samples=ROWS, n_features=50, random_state=0)`` with
sklearn's other defaults (n_informative=2, n_redundant=2, ...); 80/20 split (``train_test_split``,
random_state=0); the bank (label party) holds features 0-24 and the labels, the partner 25-49.
Model: 10 trees, depth 5, learning rate 0.3, lambda 1, gamma 0, min_child_weight 1, max_bin 32,
base_score 0.5. Baseline in the same run: plaintext XGBoost (``tree_method="hist"``, the same
hyperparameters, all 50 features, ``n_jobs=2``).

    python bench/sgb.py                     # 100k rows
    python bench/sgb.py --rows 10000
    python bench/sgb.py --transport memory  # both parties in one process (threads)
    python bench/sgb.py --profile           # cProfile of each party's main process

Prints training wall time (label party: channel open to model done), test AUC, per-phase times,
bytes on the wire, and the XGBoost time and AUC.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import multiprocessing as mp
import pstats
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from misuan.protocols import sgb  # noqa: E402


def _data(rows: int) -> tuple[np.ndarray, ...]:
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split

    X, y = make_classification(n_samples=rows, n_features=50, random_state=0)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=0)
    return Xtr, Xte, ytr.astype(float), yte.astype(float)


def _party(party: str, chan: Any, args: argparse.Namespace) -> dict[str, Any]:
    Xtr, Xte, ytr, _ = _data(args.rows)
    params = sgb.SgbParams(
        n_estimators=args.trees, max_depth=args.depth, learning_rate=args.lr, max_bin=args.max_bin,
        base_score=0.5, key_bits=args.key_bits, he_scheme=args.scheme, n_jobs=args.n_jobs,
    )
    prof = cProfile.Profile() if args.profile else None
    if prof:
        prof.enable()
    t0 = time.perf_counter()
    if party == "bank":
        res = sgb.train_label_party(chan, Xtr[:, :25], ytr, ["partner"], params)
        train_s = time.perf_counter() - t0
        margin = sgb.predict_label_party(chan, res.model, Xte[:, :25])
    else:
        res = sgb.train_feature_party(chan, Xtr[:, 25:], "bank", max_bin=args.max_bin, n_jobs=args.n_jobs)
        train_s = time.perf_counter() - t0
        sgb.predict_feature_party(chan, res.model, Xte[:, 25:])
        margin = None
    out: dict[str, Any] = {"train_s": train_s, "history": res.history, "margin": margin, "stats": chan.stats.as_dict()}
    if prof:
        prof.disable()
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(18)
        out["profile"] = buf.getvalue()
    return out


def _grpc_child(party: str, addresses: dict[str, str], tls: Any, args: argparse.Namespace, q: Any) -> None:
    from misuan.net.grpc_channel import open_grpc_channel

    try:
        chan = open_grpc_channel(party, addresses, "bench-sgb", tls, timeout_s=3600, connect_timeout_s=60)
        try:
            q.put((party, _party(party, chan, args)))
        finally:
            chan.close()
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        q.put((party, {"error": f"{type(exc).__name__}: {exc}"}))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_grpc(args: argparse.Namespace) -> dict[str, Any]:
    from misuan.net.loopback import make_test_pki

    # non-daemonic party processes (each starts its own worker processes), so not run_party_processes
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        pki = make_test_pki(tmp, ["bank", "partner"])
        addresses = {p: f"127.0.0.1:{_free_port()}" for p in ("bank", "partner")}
        q = ctx.Queue()
        procs = [ctx.Process(target=_grpc_child, args=(p, addresses, pki[p], args, q)) for p in ("bank", "partner")]
        for pr in procs:
            pr.start()
        results = dict(q.get() for _ in procs)
        for pr in procs:
            pr.join()
    return results


def run_memory(args: argparse.Namespace) -> dict[str, Any]:
    from misuan.net.memory import MemoryNetwork
    from misuan.protocols.simulation import run_parties

    ch = MemoryNetwork(["bank", "partner"], job_id="bench-sgb").channels(timeout_s=3600)
    return run_parties(ch, {p: (lambda c, p=p: _party(p, c, args)) for p in ch})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--trees", type=int, default=10)
    ap.add_argument("--depth", type=int, default=5)
    ap.add_argument("--lr", type=float, default=0.3)
    ap.add_argument("--max-bin", type=int, default=32)
    ap.add_argument("--key-bits", type=int, default=2048)
    ap.add_argument("--scheme", choices=["ou", "paillier"], default="ou")
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
    res = run_grpc(args) if args.transport == "grpc" else run_memory(args)
    wall = time.perf_counter() - t0
    for p, r in res.items():
        if "error" in r:
            raise SystemExit(f"{p} failed: {r['error']}")
    bank, partner = res["bank"], res["partner"]
    auc = roc_auc_score(yte, bank["margin"])
    hist = bank["history"]
    phase = {k: sum(h.get(k, 0.0) for h in hist) for k in ("encrypt", "wait_histograms", "decrypt", "split_finding")}
    fp_hist = sum(h.get("histogram_seconds", 0.0) for h in partner["history"])
    print(f"SecureBoost benchmark: {args.rows} rows ({len(ytr)} train / {len(yte)} test), 50 features (25 + 25), "
          f"{args.trees} trees, depth {args.depth}, eta {args.lr}, max_bin {args.max_bin}, {args.scheme.upper()} {args.key_bits}-bit, "
          f"transport {args.transport}, n_jobs {args.n_jobs or 'all cores'}")
    print(f"  SecureBoost  train {bank['train_s']:8.2f} s   test AUC {auc:.4f}   (whole run incl. process start and prediction {wall:.1f} s)")
    print(f"  XGBoost      train {xgb_s:8.2f} s   test AUC {xgb_auc:.4f}")
    print(f"  ratio time {bank['train_s'] / xgb_s:.0f}x   AUC difference {auc - xgb_auc:+.4f}")
    per_tree = [round(h["seconds"], 2) for h in hist]
    print(f"  per tree (s): {per_tree}")
    setup = bank["train_s"] - sum(h["seconds"] for h in hist)
    print(f"  label party phases (s): setup+keygen {setup:.2f}, encrypt {phase['encrypt']:.2f}, waiting for histograms "
          f"{phase['wait_histograms']:.2f}, decrypt+unpack {phase['decrypt']:.2f}, split finding {phase['split_finding']:.2f}")
    print(f"  feature party histogram (sum+pack+rerandomise) {fp_hist:.2f} s")
    st = bank["stats"]
    print(f"  bytes: label party sent {st['bytes_sent'] / 1e6:.1f} MB, received {st['bytes_received'] / 1e6:.1f} MB, rounds {st['rounds']}")
    if args.profile:
        for p in ("bank", "partner"):
            print(f"--- cProfile {p} (main process; worker processes not included) ---")
            print(res[p]["profile"])


if __name__ == "__main__":
    main()
