"""Vertical LR: the bank and the partner as two processes over gRPC + mTLS, against scikit-learn.

``make_classification`` rows (default 100k) x 30 features in 10 quantile bins each, 10 at the bank
(with the labels) and 20 at the partner; L2 with C = 1; trained until the log loss changes by less
than ``--tol`` (relative) in an iteration. Prints the wall time, iterations, bytes each party sent,
each party's peak memory, the joint model's AUC beside scikit-learn's LogisticRegression on the
pooled one-hot data (same C; its time at its default tolerance, in the same run, is the ratio's
baseline), the coefficients' relative differences from scikit-learn's optimum (fitted to tol 1e-10),
the CPU and the load average. ``--encoding woe`` fits one coefficient per feature on its bins' WOE
(the baseline then is scikit-learn on the pooled WOE columns). ``--feature-parties K`` splits the
partner features evenly over K feature parties (K + 1 processes).

    python bench/lr.py [--rows 100000] [--tol 1e-4] [--encoding dummy|woe] [--feature-parties 1] [--profile DIR]
"""

from __future__ import annotations

import argparse
import functools
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_line, load_line  # noqa: E402

# imported here, not in _party: each party process decodes its peer's first message (the wire
# registry knows vertical LR's messages once this module is imported) possibly before _party runs
import misuan.protocols.vertical_lr  # noqa: E402, F401


def feature_parties(k: int) -> list[str]:
    return ["partner" if i == 0 else f"partner{i + 1}" for i in range(k)]


def columns(bank_features: int, partner_features: int, k: int) -> dict[str, np.ndarray]:
    """Each party's columns: the bank's first, the partner features split evenly over ``k`` parties."""
    split = np.array_split(np.arange(bank_features, bank_features + partner_features), k)
    return {"bank": np.arange(bank_features), **dict(zip(feature_parties(k), split, strict=True))}


def make_data(rows: int, features: int, bins: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_classification

    x, y = make_classification(rows, features, n_informative=12, n_redundant=0, weights=[0.85], flip_y=0.05,
                               random_state=seed)
    qs = np.linspace(0, 1, bins + 1)[1:-1]
    binned = np.stack([np.searchsorted(np.quantile(x[:, j], qs), x[:, j]) for j in range(features)], axis=1)
    return binned.astype(np.uint8), y.astype(np.int64)


def pooled_design(x: np.ndarray, y: np.ndarray, bins: int, encoding: str) -> np.ndarray:
    """The plaintext twin's design on the pooled rows: one-hot bins, or each feature's bins' WOE."""
    if encoding == "dummy":
        return np.hstack([np.eye(bins)[x[:, f]] for f in range(x.shape[1])])
    from misuan.protocols.vertical_lr.encoding import woe_values

    cols = [woe_values(np.bincount(x[:, f], minlength=bins), np.bincount(x[:, f], weights=y, minlength=bins), [bins])[0]
            for f in range(x.shape[1])]
    return np.stack([c[x[:, f]] for f, c in enumerate(cols)], axis=1)


def _party(chan: Any, party: str, data: str, cols: dict[str, np.ndarray], bins: int, tol: float, encoding: str = "dummy",
           profile: str | None = None, penalty: str = "l2") -> dict[str, Any]:
    import cProfile

    from misuan.protocols.vertical_lr import TrainingParams, train_feature_party, train_label_party

    arrays = np.load(data)
    x, y = arrays["bins"], arrays["y"]
    params = TrainingParams(tol=tol, max_iter=100, encoding=encoding, penalty=penalty)  # type: ignore[arg-type]
    prof = cProfile.Profile() if profile else None
    t0 = time.monotonic()
    if prof is not None:
        prof.enable()
    own = x[:, cols[party]]
    if party == "bank":
        model: Any = train_label_party(chan, [p for p in cols if p != "bank"], own, [bins] * own.shape[1], y, params)
    else:
        model = train_feature_party(chan, "bank", own, [bins] * own.shape[1], params)
    if prof is not None and profile is not None:
        prof.disable()
        Path(profile).mkdir(parents=True, exist_ok=True)
        prof.dump_stats(str(Path(profile) / f"{party}.prof"))
    return {"coef": model.encoded_coef, "iterations": model.iterations, "seconds": time.monotonic() - t0,
            "sent": chan.stats.bytes_sent, "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--bank-features", type=int, default=10)
    ap.add_argument("--partner-features", type=int, default=20)
    ap.add_argument("--bins", type=int, default=10)
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--encoding", choices=("dummy", "woe"), default="dummy")
    ap.add_argument("--penalty", choices=("l2", "l1"), default="l2", help="l1 needs --encoding woe")
    ap.add_argument("--feature-parties", type=int, default=1, help="split the partner features over this many parties")
    ap.add_argument("--profile", metavar="DIR", help="write each party's cProfile statistics to DIR/<party>.prof")
    args = ap.parse_args(argv)
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    from misuan.net.local import make_test_pki, run_local

    features = args.bank_features + args.partner_features
    x, y = make_data(args.rows, features, args.bins)
    pooled = pooled_design(x, y, args.bins, args.encoding)
    print(f"machine: {cpu_line()}; {load_line()} at the start")
    t = time.monotonic()
    if args.penalty == "l1":  # saga (the intercept unpenalised); scikit-learn 1.8 moved L1 to l1_ratio
        import sklearn

        l1 = {"l1_ratio": 1.0} if tuple(int(v) for v in sklearn.__version__.split(".")[:2]) >= (1, 8) else {"penalty": "l1"}
        baseline, optimum = dict(solver="saga", max_iter=10_000, **l1), dict(solver="saga", tol=1e-10, max_iter=200_000, **l1)
    else:
        baseline, optimum = dict(max_iter=1000), dict(tol=1e-10, max_iter=5000)
    LogisticRegression(C=1.0, **baseline).fit(pooled, y)  # the timing baseline: scikit-learn's defaults
    sk_s = time.monotonic() - t
    reference = LogisticRegression(C=1.0, **optimum).fit(pooled, y)  # the optimum, for accuracy
    with tempfile.TemporaryDirectory() as tmp:
        data = str(Path(tmp) / "bins.npz")
        np.savez(data, bins=x, y=y)
        cols = columns(args.bank_features, args.partner_features, args.feature_parties)
        pki = make_test_pki(tmp, list(cols))
        fns = {p: functools.partial(_party, party=p, data=data, cols=cols, bins=args.bins,
                                    tol=args.tol, encoding=args.encoding, profile=args.profile, penalty=args.penalty)
               for p in cols}
        t = time.monotonic()
        out = run_local(fns, transport="processes", tls=pki, job_id="bench-lr", timeout_s=3600.0)
        wall = time.monotonic() - t
    bank = out["bank"].result
    partners = [out[p].result for p in cols if p != "bank"]
    coef = np.concatenate([bank["coef"][1:], *(r["coef"] for r in partners)])
    auc = roc_auc_score(y, bank["coef"][0] + pooled @ coef)
    sk_auc = roc_auc_score(y, reference.decision_function(pooled))
    ref = reference.coef_[0]
    big = np.abs(ref) > 0.05
    rel = np.abs(coef - ref)[big] / np.abs(ref[big])
    mib = 1 << 20
    split = " + ".join(str(len(c)) for p, c in cols.items() if p != "bank")
    print(f"vertical LR, {args.rows:,} rows x {features} features ({args.bank_features} bank + {split} at "
          f"{args.feature_parties} feature part{'y' if args.feature_parties == 1 else 'ies'}) in {args.bins} bins, "
          f"{args.encoding} encoding, {args.penalty.upper()} with C = 1, tol {args.tol:g}:")
    print(f"  wall {wall:.1f} s (processes up to results; bank's training {bank['seconds']:.1f} s), "
          f"{bank['iterations']} iterations")
    print("  sent: " + ", ".join(f"{p} {out[p].result['sent'] / mib:,.0f} MiB" for p in cols) + "; peak memory: "
          + ", ".join(f"{p} {out[p].result['peak'] / mib:,.0f} MiB" for p in cols))
    print(f"  AUC {auc:.5f}, scikit-learn {sk_auc:.5f} (difference {auc - sk_auc:+.5f}); coefficients above 0.05: "
          f"max relative difference {rel.max():.2%}, median {np.median(rel):.2%}")
    if args.penalty == "l1":
        print(f"  coefficients at zero: {int(np.sum(coef == 0))} (scikit-learn {int(np.sum(ref == 0))}; the same ones: "
              f"{bool(np.array_equal(coef == 0, ref == 0))})")
    solver = "saga" if args.penalty == "l1" else "lbfgs"
    print(f"  scikit-learn LogisticRegression ({solver}, one process, plaintext pooled {args.encoding} data): {sk_s:.1f} s; "
          f"ratio {wall / sk_s:.1f}x")
    print(f"  {load_line()} at the end")


if __name__ == "__main__":
    main()
