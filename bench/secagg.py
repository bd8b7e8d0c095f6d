"""Secure aggregation benchmark: N data parties and an aggregator, each its own process, gRPC + mTLS.

    python bench/secagg.py                          # 10 parties x 1M-entry vectors, then one killed mid-round
    python bench/secagg.py --parties 5 --length 100000
    python bench/secagg.py --boosting               # horizontal boosting, 5 lenders x 20k rows, vs pooled XGBoost

Prints, per run, ``secagg <N> x <length>: wall N s``: from starting the processes to the aggregator
holding the sum (every party's process start, keys, shares, masked vectors, unmasking); the bytes
each party and the aggregator sent; and the same figures for the baseline measured in the same run:
a **plain** aggregation over the same transport (each party sends its float64 vector to the
aggregator, which adds them), so the ratio is the price of hiding each party's vector. Then a run
in which one data party's process dies after sending its shares (``os._exit``, no goodbye): the
round still completes without it, after the aggregator's round deadline. Checks every sum against
the plaintext sum of the contributors. Prints the CPU model, its flags of interest and the load.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
import zlib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench.machine import cpu_line  # noqa: E402
from misuan.net.channel import Channel  # noqa: E402
from misuan.net.local import run_local  # noqa: E402
from misuan.protocols.secagg import SecAggParams, aggregate_as_aggregator, aggregate_as_data_party  # noqa: E402
from misuan.protocols.secagg.data_party import DataParty  # noqa: E402
from misuan.protocols.secagg.messages import Inbox, KeyList  # noqa: E402

AGGREGATOR = "aggregator"


def vector(party: str, length: int) -> np.ndarray:
    return np.random.default_rng(zlib.crc32(party.encode())).uniform(-1.0, 1.0, length)  # the same in every process


def _data_party(chan: Channel, length: int, names: list[str], params: SecAggParams, die: bool) -> dict[str, Any]:
    x = vector(chan.party, length)
    if die:  # take part up to the shares, then the process dies without a word
        me = DataParty(chan.party, x, names, params)
        chan.send(AGGREGATOR, "secagg/advertise", me.advertise())
        chan.send(AGGREGATOR, "secagg/shares", me.share(chan.recv(AGGREGATOR, "secagg/keys", expect=KeyList)))
        me.masked(chan.recv(AGGREGATOR, "secagg/inbox", expect=Inbox))
        os._exit(17)
    aggregate_as_data_party(chan, x, AGGREGATOR, names, params)
    return {"sent": chan.stats.bytes_sent}


def _aggregator(chan: Channel, names: list[str], params: SecAggParams) -> dict[str, Any]:
    res = aggregate_as_aggregator(chan, names, params)
    return {"total": res.total, "contributors": res.contributors, "dropped": res.dropped,
            "sent": chan.stats.bytes_sent, "done_at": time.monotonic()}


def _plain_party(chan: Channel, length: int) -> dict[str, Any]:
    chan.send(AGGREGATOR, "plain/vector", vector(chan.party, length))
    return {"sent": chan.stats.bytes_sent}


def _plain_aggregator(chan: Channel, names: list[str], length: int) -> dict[str, Any]:
    total = np.zeros(length)
    for p in names:
        total += chan.recv(p, "plain/vector")
    return {"total": total, "contributors": names, "dropped": {}, "sent": chan.stats.bytes_sent, "done_at": time.monotonic()}


def run(n: int, length: int, params: SecAggParams, *, plain: bool = False, kill: str | None = None) -> dict[str, Any]:
    names = [f"lender{i:02d}" for i in range(n)]
    fns: dict[str, Any] = {}  # module-level functions: the party processes are started fresh
    for p in names:
        fns[p] = functools.partial(_plain_party, length=length) if plain else \
            functools.partial(_data_party, length=length, names=names, params=params, die=p == kill)
    fns[AGGREGATOR] = functools.partial(_plain_aggregator, names=names, length=length) if plain else \
        functools.partial(_aggregator, names=names, params=params)
    t0 = time.monotonic()
    out = run_local(fns, transport="processes", job_id="bench-secagg", timeout_s=600.0, raise_errors=False)
    agg = out[AGGREGATOR]
    if agg.error is not None:
        raise RuntimeError(f"the aggregator failed: {agg.error}")
    res = agg.result
    want = sum(vector(p, length) for p in res["contributors"])
    err = float(np.max(np.abs(res["total"] - want)))
    sent = [out[p].result["sent"] for p in names if out[p].result is not None]
    return {"wall": res["done_at"] - t0, "contributors": len(res["contributors"]), "dropped": res["dropped"],
            "max_error": err, "party_sent": max(sent), "aggregator_sent": res["sent"],
            "party_rss": max(out[p].max_rss_bytes for p in names), "aggregator_rss": agg.max_rss_bytes}


def _boost_data(n_parties: int, rows: int, features: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=n_parties * rows + 20_000, n_features=features, n_informative=features // 2,
                               weights=[0.8], random_state=11)
    return x, y


def _boost_party(chan: Channel, index: int, names: list[str], rows: int, features: int) -> dict[str, Any]:
    from misuan.ml.horizontal_gbdt import fit_as_data_party

    x, y = _boost_data(len(names), rows, features)
    part = slice(index * rows, (index + 1) * rows)
    fit_as_data_party(chan, x[part], y[part], aggregator=AGGREGATOR, data_parties=names)
    return {"sent": chan.stats.bytes_sent}


def _boost_aggregator(chan: Channel, names: list[str], rows: int, features: int) -> dict[str, Any]:
    from misuan.ml.horizontal_gbdt import fit_as_aggregator

    model = fit_as_aggregator(chan, features, data_parties=names)
    done_at = time.monotonic()
    x, _ = _boost_data(len(names), rows, features)  # the benchmark's held-out rows, to score the model on
    return {"test_proba": model.predict_proba(x[len(names) * rows :]), "rounds": model.rounds,
            "sent": chan.stats.bytes_sent, "done_at": done_at}


def run_boosting(n: int, rows: int, features: int) -> None:
    """The boosting job: ``n`` lenders x ``rows`` rows, 10 trees of depth 4, against XGBoost on the pooled rows."""
    import xgboost as xgb
    from sklearn.metrics import roc_auc_score

    names = [f"lender{i:02d}" for i in range(n)]
    fns: dict[str, Any] = {p: functools.partial(_boost_party, index=i, names=names, rows=rows, features=features)
                           for i, p in enumerate(names)}
    fns[AGGREGATOR] = functools.partial(_boost_aggregator, names=names, rows=rows, features=features)
    t0 = time.monotonic()
    out = run_local(fns, transport="processes", job_id="bench-hgb", timeout_s=1200.0)
    wall = out[AGGREGATOR].result["done_at"] - t0
    res = out[AGGREGATOR].result
    x, y = _boost_data(n, rows, features)
    train, test = slice(0, n * rows), slice(n * rows, None)
    t1 = time.perf_counter()
    pooled = xgb.XGBClassifier(n_estimators=10, max_depth=4, learning_rate=0.3, max_bin=32, tree_method="hist",
                               n_jobs=os.cpu_count()).fit(x[train], y[train])
    xgb_s = time.perf_counter() - t1
    auc_fed = roc_auc_score(y[test], res["test_proba"])
    auc_xgb = roc_auc_score(y[test], pooled.predict_proba(x[test])[:, 1])
    mib = 2**20
    print(f"hgb {n} x {rows} rows x {features} features: wall {wall:.1f} s ({res['rounds']} aggregation rounds); "
          f"test AUC {auc_fed:.4f} against pooled XGBoost {auc_xgb:.4f} (trained in {xgb_s:.2f} s, same run); "
          f"bytes sent: a lender {max(out[p].result['sent'] for p in names) / mib:,.1f} MiB, "
          f"the aggregator {out[AGGREGATOR].result['sent'] / mib:,.1f} MiB")


def _show(label: str, r: dict[str, Any]) -> None:
    mib = 2**20
    print(f"{label}: wall {r['wall']:.1f} s; {r['contributors']} contributors, dropped {r['dropped'] or 'none'}; "
          f"max error {r['max_error']:.1e}; bytes sent: a party {r['party_sent'] / mib:,.1f} MiB, the aggregator "
          f"{r['aggregator_sent'] / mib:,.1f} MiB; peak memory: a party {r['party_rss'] / mib:,.0f} MiB, "
          f"the aggregator {r['aggregator_rss'] / mib:,.0f} MiB")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parties", type=int, default=10)
    ap.add_argument("--length", type=int, default=1_000_000)
    ap.add_argument("--round-timeout", type=float, default=10.0, help="the aggregator's deadline per round (s)")
    ap.add_argument("--no-kill", action="store_true", help="skip the run with a party killed mid-round")
    ap.add_argument("--boosting", action="store_true", help="only the boosting job (5 lenders x 20k rows by default)")
    ap.add_argument("--rows", type=int, default=20_000, help="rows per lender in the boosting job")
    ap.add_argument("--features", type=int, default=20, help="features in the boosting job")
    args = ap.parse_args(argv)
    params = SecAggParams(max_abs=10.0, round_timeout_s=args.round_timeout)
    print(f"machine: {cpu_line()}; load average {os.getloadavg()[0]:.2f}")
    if args.boosting:
        run_boosting(args.parties if args.parties != 10 else 5, args.rows, args.features)
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        return
    n, length = args.parties, args.length
    plain = run(n, length, params, plain=True)
    _show(f"plain {n} x {length}", plain)
    sec = run(n, length, params)
    print(f"secagg {n} x {length}: wall {sec['wall']:.1f} s")
    _show(f"secagg {n} x {length}", sec)
    print(f"  ratio to the plain aggregation in the same run: {sec['wall'] / plain['wall']:.2f}x wall, "
          f"{sec['party_sent'] / plain['party_sent']:.3f}x bytes per party")
    if not args.no_kill:
        killed = run(n, length, params, kill="lender03")
        _show(f"secagg {n} x {length}, lender03 killed after its shares", killed)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
