"""``misuan demo --horizontal``: five lenders learn together over secure aggregation, on real data.

What it does, as a new user would see it:

1. splits the bundled UCI Taiwan credit-default data (CC BY 4.0) into five lenders of different
   sizes and default rates (each a CSV of its own customers, split into training and hold-out rows),
   with the same 23 features and each its own default labels;
2. makes a throw-away certificate authority and one certificate per party;
3. starts the five lenders and an aggregator as six OS processes that talk gRPC with mutual TLS on
   loopback; each lender reads only its own file and writes its own hash-chained ledger; together,
   over secure aggregation (:mod:`misuan.protocols.secagg`), they agree on pooled bins with their
   WOE and IV (:mod:`misuan.ml.horizontal_binning`), fit a logistic-regression scorecard on the WOE
   (:mod:`misuan.ml.horizontal_lr`; points per bin and reason codes, :mod:`misuan.ml.scorecard`)
   and grow boosted trees (:mod:`misuan.ml.horizontal_gbdt`);
4. each lender scores its own hold-out customers with its model alone (XGBoost on its rows) and
   with the two federated models; for comparison only, the demo also fits XGBoost on all lenders'
   rows pooled (possible here because the demo holds every file; in production nobody can);
5. writes a self-contained HTML report and prints a short summary.

Everything lands in ``--workdir`` (default ``./misuan-demo``), under ``horizontal/``.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from misuan.atomic_files import write_atomic
from misuan.audit.ledger import Ledger
from misuan.datasets import taiwan
from misuan.errors import JobError
from misuan.ml.horizontal_binning import HorizontalWoe, bin_values, woe_as_aggregator, woe_as_data_party
from misuan.ml.horizontal_gbdt import HorizontalGBDTParams
from misuan.ml.horizontal_gbdt import fit_as_aggregator as gbdt_aggregator
from misuan.ml.horizontal_gbdt import fit_as_data_party as gbdt_data_party
from misuan.ml.horizontal_lr import HorizontalLRResult
from misuan.ml.horizontal_lr import fit_as_aggregator as lr_aggregator
from misuan.ml.horizontal_lr import fit_as_data_party as lr_data_party
from misuan.ml.metrics import roc_auc
from misuan.ml.scorecard import Scorecard, scorecard_from_woe_lr
from misuan.net.channel import Channel
from misuan.net.local import make_test_pki, run_local_openers
from misuan.report.horizontal_page import render_horizontal_page

__all__ = ["FEATURES", "LENDERS", "HorizontalDemoConfig", "run", "split_lenders"]

AGGREGATOR = "aggregator"
FEATURES = (taiwan.BANK_FEATURES[:1] + taiwan.PARTNER_FEATURES[:4] + taiwan.BANK_FEATURES[1:]
            + taiwan.PARTNER_FEATURES[4:])
# name, share of customers, tilt towards customers behind on a payment (+) or graduates who are not (-)
LENDERS = (
    ("lender-a", 0.34, -0.6, "a city bank"),
    ("lender-b", 0.26, 0.0, "a national bank"),
    ("lender-c", 0.20, 0.4, "a regional bank"),
    ("lender-d", 0.12, 1.0, "an online consumer lender"),
    ("lender-e", 0.08, 0.6, "a rural credit cooperative"),
)


@dataclasses.dataclass(frozen=True)
class HorizontalDemoConfig:
    workdir: Path
    n_estimators: int = 10
    max_depth: int = 4
    learning_rate: float = 0.3
    max_bin: int = 10  # WOE bins per feature
    holdout_fraction: float = 0.3
    seed: int = 0
    transport: str = "processes"
    max_rows: int | None = None  # fewer customers, for a quick run (tests)


def split_lenders(cfg: HorizontalDemoConfig) -> dict[str, pd.DataFrame]:
    """Each lender's customers: a random share, tilted by payment status and education, so that sizes and
    default rates differ as between a city bank and an online lender."""
    df = taiwan.load_taiwan()
    rng = np.random.default_rng(cfg.seed)
    if cfg.max_rows is not None:
        df = df.iloc[rng.permutation(len(df))[: cfg.max_rows]].reset_index(drop=True)
    late = (df["PAY_0"] >= 1).to_numpy()  # behind on this month's payment
    z = np.where(late, 1, np.where((df["EDUCATION"] == 1).to_numpy(), -1, 0))
    weights = np.array([[share * np.exp(tilt * zz) for _, share, tilt, _ in LENDERS] for zz in (-1.0, 0.0, 1.0)])
    probs = weights[z + 1]
    probs /= probs.sum(axis=1, keepdims=True)
    pick = (probs.cumsum(axis=1) > rng.random(len(df))[:, None]).argmax(axis=1)
    out = {}
    for k, (name, *_rest) in enumerate(LENDERS):
        rows = df[pick == k].copy()
        rows["holdout"] = rng.random(len(rows)) < cfg.holdout_fraction
        out[name] = rows
    return out


def _write_lender_files(tables: dict[str, pd.DataFrame], directory: Path) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, df in tables.items():
        paths[name] = directory / f"{name}.csv"
        write_atomic(paths[name], df.to_csv(index=False).encode())
    return paths


# --- the parties (module-level: each runs in a fresh process) -------------------------------------
def _lender(open_channel: Any, *, path: str, ledger: str, lenders: list[str], cfg: HorizontalDemoConfig) -> dict[str, Any]:
    from xgboost import XGBClassifier

    df = pd.read_csv(path)
    train, test = df[~df["holdout"]], df[df["holdout"]]
    x, y = train[list(FEATURES)].to_numpy(dtype=float), train[taiwan.LABEL].to_numpy(dtype=float)
    xt, yt = test[list(FEATURES)].to_numpy(dtype=float), test[taiwan.LABEL].to_numpy()
    with Ledger(ledger, party=Path(path).stem) as book:
        chan: Channel = open_channel(book)
        t0 = time.perf_counter()
        table = woe_as_data_party(chan, x, y, aggregator=AGGREGATOR, data_parties=lenders, max_bin=cfg.max_bin)
        keep = _scorecard_features(table.iv)  # the same at every party: the pooled IVs are known to all
        lr = lr_data_party(chan, table.transform(x)[:, keep], y, aggregator=AGGREGATOR, data_parties=lenders, c=1.0)
        gbdt = gbdt_data_party(chan, x, y, aggregator=AGGREGATOR, data_parties=lenders, params=_gbdt_params(cfg))
        seconds = time.perf_counter() - t0
        sent, received = chan.stats.bytes_sent, chan.stats.bytes_received
        entries, head = book.length(), book.head()
    card = _scorecard(table, keep, lr)
    bins_t = bin_values(xt, table.edges)[:, keep]
    scores = card.score(bins_t)
    low = int(np.argmin(scores)) if scores.size else 0
    alone = XGBClassifier(n_estimators=cfg.n_estimators, max_depth=cfg.max_depth, learning_rate=cfg.learning_rate,
                          max_bin=32, n_jobs=1).fit(x, y)
    return {
        "rows_train": len(train), "rows_holdout": len(test), "bad_rate": float(df[taiwan.LABEL].mean()),
        "auc_alone": roc_auc(yt, alone.predict_proba(xt)[:, 1]),
        "auc_scorecard": roc_auc(yt, lr.predict_proba(table.transform(xt)[:, keep])),
        "auc_boosting": roc_auc(yt, gbdt.predict_proba(xt)),
        "seconds": seconds, "bytes_sent": sent, "bytes_received": received, "ledger_entries": entries, "ledger_head": head,
        "lr_iterations": lr.iterations, "gbdt_rounds": gbdt.rounds,
        "score_median": float(np.median(scores)) if scores.size else 0.0,
        "lowest_score": float(scores[low]) if scores.size else 0.0,
        "lowest_reasons": card.reasons(bins_t[low : low + 1])[0] if scores.size else [],
    }


def _scorecard(table: HorizontalWoe, keep: list[int], lr: HorizontalLRResult) -> Scorecard:
    """The federated scorecard, the same at every party: points per bin of the kept features."""
    return scorecard_from_woe_lr([FEATURES[k] for k in keep], [table.edges[k] for k in keep], table.woe[keep],
                                 lr.coef, lr.intercept)


def _aggregator(open_channel: Any, *, ledger: str, lenders: list[str], cfg: HorizontalDemoConfig) -> dict[str, Any]:
    with Ledger(ledger, party=AGGREGATOR) as book:
        chan: Channel = open_channel(book)
        table = woe_as_aggregator(chan, len(FEATURES), data_parties=lenders, max_bin=cfg.max_bin)
        keep = _scorecard_features(table.iv)
        lr = lr_aggregator(chan, len(keep), data_parties=lenders, c=1.0)
        gbdt = gbdt_aggregator(chan, len(FEATURES), data_parties=lenders, params=_gbdt_params(cfg))
        entries, head = book.length(), book.head()
    iv = sorted(zip(FEATURES, table.iv.tolist(), strict=True), key=lambda t: -t[1])
    return {
        "iv": [{"feature": f, "iv": v} for f, v in iv],
        "scorecard_coef": dict(zip([FEATURES[k] for k in keep], lr.coef.tolist(), strict=True)),
        "scorecard_intercept": lr.intercept, "scorecard_min_iv": SCORECARD_MIN_IV,
        "scorecard_points": _scorecard(table, keep, lr).table(),
        "contributors": gbdt.contributors, "lr_iterations": lr.iterations, "gbdt_rounds": gbdt.rounds,
        "bytes_sent": chan.stats.bytes_sent, "ledger_entries": entries, "ledger_head": head,
    }


SCORECARD_MIN_IV = 0.1  # a scorecard keeps the features of at least medium predictive power (IV >= 0.1)


def _scorecard_features(iv: np.ndarray) -> list[int]:
    """The features the scorecard uses: pooled IV of at least SCORECARD_MIN_IV (the usual rule of
    thumb; weaker ones, here the bill amounts, are collinear noise that flips weights' signs)."""
    return [k for k, v in enumerate(iv.tolist()) if v >= SCORECARD_MIN_IV]


def _gbdt_params(cfg: HorizontalDemoConfig) -> HorizontalGBDTParams:
    return HorizontalGBDTParams(n_estimators=cfg.n_estimators, max_depth=cfg.max_depth,
                                learning_rate=cfg.learning_rate, max_bin=32)


def _pooled_reference(tables: dict[str, pd.DataFrame], cfg: HorizontalDemoConfig) -> dict[str, float]:
    """XGBoost on every lender's training rows pooled, scored on each lender's hold-out rows (demo only)."""
    from xgboost import XGBClassifier

    pooled = pd.concat([t[~t["holdout"]] for t in tables.values()])
    model = XGBClassifier(n_estimators=cfg.n_estimators, max_depth=cfg.max_depth, learning_rate=cfg.learning_rate,
                          max_bin=32).fit(pooled[list(FEATURES)], pooled[taiwan.LABEL])
    out = {}
    for name, t in tables.items():
        test = t[t["holdout"]]
        out[name] = roc_auc(test[taiwan.LABEL].to_numpy(), model.predict_proba(test[list(FEATURES)])[:, 1])
    return out


def run_demo(cfg: HorizontalDemoConfig) -> dict[str, Any]:
    """Run the demo; returns the report's summary (also written as ``summary.json``)."""
    root = cfg.workdir / "horizontal"
    if root.exists():
        shutil.rmtree(root)
    tables = split_lenders(cfg)
    paths = _write_lender_files(tables, root / "data")
    lenders = [name for name, *_ in LENDERS]
    parties = [*lenders, AGGREGATOR]
    tls = make_test_pki(root / "certs", parties, name="misuan horizontal demo CA") if cfg.transport == "processes" else None
    for p in parties:
        (root / "nodes" / p).mkdir(parents=True, exist_ok=True)
    fns: dict[str, Any] = {
        p: functools.partial(_lender, path=str(paths[p]), ledger=str(root / "nodes" / p / "ledger.sqlite"),
                             lenders=lenders, cfg=cfg) for p in lenders
    }
    fns[AGGREGATOR] = functools.partial(_aggregator, ledger=str(root / "nodes" / AGGREGATOR / "ledger.sqlite"),
                                        lenders=lenders, cfg=cfg)
    t0 = time.perf_counter()
    outcomes = run_local_openers(fns, transport=cfg.transport, tls=tls, job_id="horizontal-demo",  # type: ignore[arg-type]
                                 timeout_s=900.0, raise_errors=False)
    wall = time.perf_counter() - t0
    failed = {p: repr(o.error) for p, o in outcomes.items() if o.error is not None}
    if failed:
        raise JobError(f"the horizontal demo failed: {failed}")
    pooled = _pooled_reference(tables, cfg)
    agg = outcomes[AGGREGATOR].result
    rows = []
    for (name, _share, _tilt, what) in LENDERS:
        r = outcomes[name].result
        rows.append({"name": name, "what": what, **r, "auc_pooled_reference": pooled[name]})
    summary = {
        "generated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "wall_s": wall, "transport": cfg.transport, "aggregator": AGGREGATOR, "features": list(FEATURES),
        "params": {"n_estimators": cfg.n_estimators, "max_depth": cfg.max_depth, "learning_rate": cfg.learning_rate,
                   "woe_bins": cfg.max_bin, "threshold": len(lenders) // 2 + 1},
        "lenders": rows, **agg,
    }
    root.mkdir(parents=True, exist_ok=True)
    write_atomic(root / "summary.json", json.dumps(summary, indent=2).encode())
    write_atomic(root / "report.html", render_horizontal_page(summary).encode())
    return summary


def format_summary(summary: dict[str, Any], root: Path) -> str:
    lines = [f"misuan horizontal demo: {len(summary['lenders'])} lenders and an aggregator, "
             f"{'separate processes, gRPC + mutual TLS' if summary['transport'] == 'processes' else 'threads'}, "
             f"{summary['wall_s']:.1f} s",
             "lender      customers  bad rate  AUC alone  scorecard (fed.)  boosting (fed.)"]
    for r in summary["lenders"]:
        lines.append(f"{r['name']:10s} {r['rows_train'] + r['rows_holdout']:10,d}  {r['bad_rate']:8.1%}  "
                     f"{r['auc_alone']:9.3f}  {r['auc_scorecard']:16.3f}  {r['auc_boosting']:15.3f}")
    top = ", ".join(f"{t['feature']} {t['iv']:.2f}" for t in summary["iv"][:4])
    lines.append(f"pooled IV, highest: {top}")
    lines.append(f"report: {root / 'report.html'}; ledgers: {root / 'nodes'}/<party>/ledger.sqlite")
    return "\n".join(lines)


def run(workdir: str | Path, *, trees: int = 10, depth: int = 4, seed: int = 0) -> int:
    cfg = HorizontalDemoConfig(Path(workdir).resolve(), n_estimators=trees, max_depth=depth, seed=seed)
    summary = run_demo(cfg)
    print(format_summary(summary, cfg.workdir / "horizontal"))
    return 0
