"""Online scoring benchmark: the partner's and the bank's serving nodes as two `misuan serve` processes
(gRPC + mutual TLS on loopback), measured through the bank's HTTP decision API from this process.

Model: SecureBoost on the UCI Taiwan data split as in `misuan demo` (bank: limit and repayment
status; partner: demographics, bills, payments), trained on 8,000 customers (20 trees, depth 4), or
with ``--model scorecard`` the federated scorecard (vertical LR on 10 quantile bins per feature, the
parts the `vertical_lr` step writes); both feature stores hold 6,000 other customers (the applicants).

    python bench/serving.py                          # latency, batch throughput, a 60 s load at 50 req/s
    python bench/serving.py --model scorecard
    python bench/serving.py --load-seconds 10 --rate 20

Prints: single-request latency p50/p99 (sequential requests, the full API: HTTP, JSON, the partner's
round trip, the lending decision and its disclosure), the throughput of a 10,000-applicant batch,
and the fixed-rate load's errors, latency and the bank process's memory at the start and the end;
the CPU model and the load average.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench.machine import cpu_line, load_line  # noqa: E402
from misuan.datasets import taiwan  # noqa: E402
from misuan.ml.secureboost import SecureBoostClassifier, fit_local  # noqa: E402
from misuan.ml.vertical_lr import VerticalLogisticRegression, scorecard_part  # noqa: E402
from misuan.ml.vertical_lr import fit_local as vlr_fit_local  # noqa: E402
from misuan.net.local import free_port, make_test_pki  # noqa: E402
from misuan.protocols.secureboost.binning import binned_features  # noqa: E402
from misuan.serving.config import model_sha256, serve_config_text  # noqa: E402

BANK, PARTNER = list(taiwan.BANK_FEATURES), list(taiwan.PARTNER_FEATURES)


def _trees(root: Path, train: Any, trees: int, depth: int) -> None:
    est = SecureBoostClassifier(n_estimators=trees, max_depth=depth, learning_rate=0.3)
    t0 = time.perf_counter()
    models, _ = fit_local(est, {"bank": train[BANK], "partner": train[PARTNER]}, train[taiwan.LABEL].to_numpy(), label_party="bank")
    print(f"trained {trees} trees of depth {depth} on 8,000 customers in {time.perf_counter() - t0:.1f} s", flush=True)
    for p, m in models.items():
        m.save_model(root / f"{p}_model.json")


def _scorecard(root: Path, train: Any) -> None:
    cols = {"bank": BANK, "partner": PARTNER}
    binned = {p: binned_features(train[c], 10) for p, c in cols.items()}
    t0 = time.perf_counter()
    models, _ = vlr_fit_local(VerticalLogisticRegression(), {p: b[1] for p, b in binned.items()},
                              {p: b[0].n_bins for p, b in binned.items()}, train[taiwan.LABEL].to_numpy(), label_party="bank")
    print(f"trained the scorecard ({len(BANK)} + {len(PARTNER)} features, {models['bank'].n_iter_} iterations) on 8,000 "
          f"customers in {time.perf_counter() - t0:.1f} s", flush=True)
    n_all = len(BANK) + len(PARTNER)
    for p, (binner, _, names) in binned.items():
        m = models[p]
        card = m.scorecard(names, [[f"bin {i}" for i in range(n)] for n in binner.n_bins], n_all)
        part = scorecard_part(p, m.role_, card, m.coef_, m.intercept_ if p == "bank" else None, binner.cuts, n_all)
        (root / f"{p}_model.json").write_text(json.dumps(part))


def _setup(root: Path, model: str, trees: int, depth: int) -> dict[str, Any]:
    df = taiwan.load_taiwan().sample(frac=1.0, random_state=0).reset_index(drop=True)
    df["customer_id"] = [f"C{i:06d}" for i in range(len(df))]
    train, apply = df.iloc[:8000], df.iloc[8000:14000]
    if model == "scorecard":
        _scorecard(root, train)
    else:
        _trees(root, train, trees, depth)
    apply[["customer_id", *BANK]].to_csv(root / "bank.csv", index=False)
    apply[["customer_id", *PARTNER]].to_csv(root / "partner.csv", index=False)
    make_test_pki(root / "certs", ["bank", "partner"])
    ports = {"bank": free_port(), "partner": free_port(), "http": free_port()}
    for me, peer in (("bank", "partner"), ("partner", "bank")):
        (root / f"{me}.toml").write_text(serve_config_text(
            party=me, model=f"{me}_model.json", model_id="bench", peer_model_sha256=model_sha256(root / f"{peer}_model.json"),
            listen=f"127.0.0.1:{ports[me]}", peer=peer, peer_address=f"127.0.0.1:{ports[peer]}",
            tls=("certs/ca.pem", f"certs/{me}.pem", f"certs/{me}.key"), data_dir=f"{me}-serve", features_csv=f"{me}.csv",
            id_column="customer_id", http=f"127.0.0.1:{ports['http']}" if me == "bank" else None, deadline_ms=500,
        ))
    return {"ids": apply["customer_id"].tolist(), "url": f"http://127.0.0.1:{ports['http']}"}


def _post(url: str, doc: Any, timeout: float = 30) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=json.dumps(doc).encode(), headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {}


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _wait_ready(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise SystemExit("the bank's API did not come up")


def _latency(url: str, ids: list[str], n: int) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        status, body = _post(f"{url}/v1/decisions", {"id": ids[i % len(ids)], "amount": 5000})
        out.append((time.perf_counter() - t0) * 1000)
        if status != 200 or not body.get("partner_answered"):
            raise SystemExit(f"request {i} failed: {status} {body}")
    return out


def _load(url: str, ids: list[str], seconds: float, rate: float) -> tuple[int, int, list[float]]:
    """Requests at a fixed rate (each in its own thread, so a slow one does not slow the schedule)."""
    lat: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def one(i: int) -> None:
        t0 = time.perf_counter()
        status, body = _post(f"{url}/v1/decisions", {"id": ids[i % len(ids)]}, timeout=5)
        with lock:
            lat.append((time.perf_counter() - t0) * 1000)
            if status != 200 or not body.get("partner_answered"):
                errors[0] += 1

    threads = []
    start = time.perf_counter()
    n = int(seconds * rate)
    for i in range(n):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        t = threading.Thread(target=one, args=(i,))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    return n, errors[0], lat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=("secureboost", "scorecard"), default="secureboost")
    ap.add_argument("--trees", type=int, default=20)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--requests", type=int, default=500, help="sequential single requests for the latency")
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--load-seconds", type=float, default=60.0)
    ap.add_argument("--rate", type=float, default=50.0, help="requests per second during the load")
    args = ap.parse_args()
    print(f"machine: {cpu_line()}; {load_line()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="misuan-serve-bench-") as tmp:
        root = Path(tmp)
        setup = _setup(root, args.model, args.trees, args.depth)
        procs = [subprocess.Popen([sys.executable, "-m", "misuan.cli", "serve", "--config", str(root / f"{p}.toml")],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for p in ("partner", "bank")]
        try:
            url, ids = setup["url"], setup["ids"]
            _wait_ready(url)
            _latency(url, ids, 20)  # warm-up: the session opens, the probe
            lat = _latency(url, ids, args.requests)
            q = np.percentile(lat, [50, 99])
            print(f"single request ({args.requests} sequential): p50 {q[0]:.2f} ms, p99 {q[1]:.2f} ms, "
                  f"mean {statistics.mean(lat):.2f} ms (target p99 < 20 ms)", flush=True)
            apps = [{"id": ids[i % len(ids)]} for i in range(args.batch)]
            t0 = time.perf_counter()
            status, body = _post(f"{url}/v1/decisions/batch", {"applicants": apps}, timeout=300)
            dt = time.perf_counter() - t0
            ok = status == 200 and all(r["partner_answered"] for r in body["results"])
            if not ok:
                bad = next((r for r in body.get("results", []) if not r["partner_answered"]), body)
                print(f"  batch failure: status {status}, {bad.get('refer_because') or bad}", flush=True)
            print(f"batch of {args.batch:,}: {dt:.2f} s, {args.batch / dt:,.0f} applicants/s ({'ok' if ok else 'FAILED'}; "
                  "target > 2,000/s)", flush=True)
            rss0 = _rss_mib(procs[1].pid)
            n, errors, lat = _load(url, ids, args.load_seconds, args.rate)
            rss1 = _rss_mib(procs[1].pid)
            q = np.percentile(lat, [50, 99])
            print(f"load {args.load_seconds:.0f} s at {args.rate:g} req/s: {n} requests, {errors} errors, p50 {q[0]:.2f} ms, "
                  f"p99 {q[1]:.2f} ms; bank RSS {rss0:.0f} -> {rss1:.0f} MiB", flush=True)
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(10)
    print(f"done; {load_line()}")


if __name__ == "__main__":
    main()
