"""Benchmark: secure WOE/IV of the feature party's features against the label party's labels.

Default: 100,000 rows x 25 features, 10 quantile bins, Okamoto-Uchiyama with a 2048-bit key. Both
parties run in this process (threads over in-memory channels, so the wire encoding and every check
run); the feature party's bin sums and the label party's encryption use worker processes.
Prints the wall time of the whole protocol, of its two heavy phases measured on their own, and the
ratio to the plaintext twin (the same binning on joined data) measured in the same run.

    python bench/woe.py [--rows 100000] [--features 25] [--bins 10] [--method quantile] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd

from misuan.crypto.he import PrivateKey, PublicKey, generate_keypair
from misuan.ml.woe import woe_iv_plaintext
from misuan.net.local import run_local
from misuan.protocols.woe import WoeParams, WoeResult, woe_iv
from misuan.protocols.woe.binning import unsupervised_bins
from misuan.protocols.woe.he_batch import ZeroEncryptions, bin_sums_by_feature, encrypt_labels


def make_data(rows: int, features: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(rows) < 0.2).astype(np.int64)
    cols = {}
    for j in range(features):
        x = rng.normal(0, 1, rows) + y * (j % 5) * 0.2
        x[rng.random(rows) < 0.02 * (j % 3)] = np.nan  # some features have missing values
        cols[f"f{j:02d}"] = x
    return pd.DataFrame(cols), y


def _arguments() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--features", type=int, default=25)
    ap.add_argument("--bins", type=int, default=10)
    ap.add_argument("--method", default="quantile", choices=["quantile", "equal_width", "chimerge", "tree"])
    ap.add_argument("--workers", type=int, default=None, help="processes per party (default: all cores)")
    ap.add_argument("--key-bits", type=int, default=2048)
    ap.add_argument("--scheme", default="ou", choices=["ou", "paillier"])
    return ap.parse_args()


def _secure_runs(
    args: argparse.Namespace,
    feats: pd.DataFrame,
    y: np.ndarray,
    cfg: WoeParams,
    keys: tuple[PublicKey, PrivateKey],
    twin: WoeResult,
    t_plain: float,
) -> bool:
    """The protocol end to end, then again with the label encryptions' randomisers precomputed;
    returns whether both results equal the plaintext twin."""
    t = time.perf_counter()
    out = run_local(
        {
            "bank": lambda c: woe_iv(c, "label_party", "partner", y, params=cfg, keypair=keys),
            "partner": lambda c: woe_iv(c, "feature_party", "bank", feats, params=cfg),
        },
        job_id="bench-woe",
    )
    t_secure = time.perf_counter() - t
    same = out["bank"].result.to_dict() == twin.to_dict()
    stats = out["bank"].stats
    print(
        f"  secure protocol (end to end): {t_secure:7.3f} s  = {t_secure / t_plain:.0f}x the plaintext twin"
    )
    print(
        f"    traffic: {stats['bytes_sent'] / 1e6:.1f} MB bank->partner, {stats['bytes_received'] / 1e6:.2f} MB back"
    )
    print(f"    result equals the plaintext twin: {same}")

    # the same job with the label encryptions' randomisers precomputed (offline, e.g. during PSI)
    t = time.perf_counter()
    zeros = ZeroEncryptions.precompute(keys[0], args.rows, args.workers)
    t_zeros = time.perf_counter() - t
    t = time.perf_counter()
    out2 = run_local(
        {
            "bank": lambda c: woe_iv(c, "label_party", "partner", y, params=cfg, keypair=keys, zeros=zeros),
            "partner": lambda c: woe_iv(c, "feature_party", "bank", feats, params=cfg),
        },
        job_id="bench-woe-online",
    )
    t_online = time.perf_counter() - t
    print(f"  with precomputed encryptions of zero: offline {t_zeros:.3f} s, then the protocol")
    print(
        f"    online (end to end):        {t_online:7.3f} s  = {t_online / t_plain:.0f}x the plaintext twin"
    )
    same_online = out2["bank"].result.to_dict() == twin.to_dict()
    print(f"    result equals the plaintext twin: {same_online}")
    return same and same_online


def _heavy_phases(
    args: argparse.Namespace, feats: pd.DataFrame, y: np.ndarray, cfg: WoeParams, pk: PublicKey
) -> None:
    """Label encryption and bin sums on their own, on all workers and in one process."""
    t = time.perf_counter()
    wire_cts = encrypt_labels(pk, y, args.workers)
    t_enc = time.perf_counter() - t
    k = min(len(y), 5000)
    t, c = time.perf_counter(), time.process_time()
    pk.encrypt_ints(y[:k])
    t_enc_1 = (time.perf_counter() - t) / k * len(y)
    c_enc_1 = (time.process_time() - c) / k * len(y)
    cts = pk.from_array(wire_cts)
    binned = [
        unsupervised_bins(
            feats[col].to_numpy(),
            args.method if args.method in ("quantile", "equal_width") else "chimerge",
            cfg,
        )
        for col in feats
    ]
    codes = [b.assign(feats[col].to_numpy()) for b, col in zip(binned, feats, strict=True)]
    n_bins = [b.n_bins for b in binned]
    t = time.perf_counter()
    bin_sums_by_feature(pk, cts, wire_cts, codes, n_bins, args.workers)
    t_sums = time.perf_counter() - t
    t, c = time.perf_counter(), time.process_time()
    bin_sums_by_feature(pk, cts, wire_cts, codes, n_bins, 1)
    t_sums_1, c_sums_1 = time.perf_counter() - t, time.process_time() - c
    t = time.perf_counter()
    for feature_codes, b in zip(codes[:5], n_bins[:5], strict=True):
        pk.bin_sums(cts, feature_codes, b)
    t_naive = (time.perf_counter() - t) / 5 * len(codes)
    print(
        f"  label encryption, all workers: {t_enc:6.3f} s  ({t_enc / args.rows * 1e6:.1f} us per row, wall)"
    )
    print(
        f"  label encryption, one process: {t_enc_1:6.3f} s  ({c_enc_1:.2f} CPU s, extrapolated from {k} rows)"
    )
    print(f"  bin sums, all workers:        {t_sums:7.3f} s")
    print(f"  bin sums, one process:        {t_sums_1:7.3f} s  ({c_sums_1:.2f} CPU s, joint-cell grouping)")
    print(f"  bin sums, naive per feature:  {t_naive:7.3f} s  (one process, extrapolated from 5 features)")
    cores = len(os.sched_getaffinity(0))
    print(
        f"  CPU of the two heavy phases: {c_enc_1 + c_sums_1:.2f} CPU s; on {cores} idle cores that bounds the "
        f"protocol at about {(c_enc_1 + c_sums_1) / cores:.1f} s plus overheads"
    )


def main() -> None:
    args = _arguments()
    feats, y = make_data(args.rows, args.features)
    cfg = WoeParams(
        method=args.method, n_bins=args.bins, workers=args.workers, min_key_bits=min(2048, args.key_bits)
    )
    print(
        f"WOE/IV: {args.rows} rows x {args.features} features, {args.method}, {args.bins} bins, "
        f"{args.scheme.upper()} {args.key_bits}-bit"
    )

    print(
        f"  cores: {len(os.sched_getaffinity(0))}, load average {os.getloadavg()[0]:.1f} (other work on the machine)"
    )
    t = time.perf_counter()
    twin = woe_iv_plaintext(feats, y, cfg)
    t_plain = time.perf_counter() - t
    print(f"  plaintext twin:              {t_plain:8.3f} s")

    t = time.perf_counter()
    keys = generate_keypair(args.scheme, args.key_bits)
    keys[0].warm_up()
    print(
        f"  key generation + tables:     {time.perf_counter() - t:8.3f} s  (once per job, not counted below)"
    )
    same = _secure_runs(args, feats, y, cfg, keys, twin, t_plain)
    _heavy_phases(args, feats, y, cfg, keys[0])
    if not same:
        raise SystemExit("the secure result differs from the plaintext twin")


if __name__ == "__main__":
    main()
