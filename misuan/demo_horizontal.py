"""``misuan demo --horizontal``: five lenders learn together over secure aggregation, on real data.

What it does, as a new user would see it:

1. splits the bundled UCI Taiwan credit-default data (CC BY 4.0) into five lenders of different
   sizes and default rates (each a CSV of its own customers, split into training and hold-out rows),
   with the same 23 features and each its own default labels;
2. writes a job spec (``horizontal/job.toml``): the five lenders as ``data_party``, an
   ``aggregator``, and three steps: pooled bins with their WOE and IV (``horizontal_woe``), a
   logistic-regression scorecard on the WOE with points per bin and reason codes
   (``horizontal_scorecard``) and boosted trees (``horizontal_boosting``), see
   :mod:`misuan.node.steps.horizontal`;
3. runs it as ``misuan simulate`` does: six ``misuan run`` processes with a throw-away certificate
   authority, talking gRPC with mutual TLS on loopback; each lender reads only its own file and
   writes its own hash-chained ledger, and every party, the aggregator too, ends with the same
   models, learnt over secure aggregation (:mod:`misuan.protocols.secagg`);
4. each lender scores its own hold-out customers with its model alone (XGBoost on its rows) and
   with the two federated models; for comparison only, the demo also fits XGBoost on all lenders'
   rows pooled (possible here because the demo holds every file; in production nobody can);
5. writes a self-contained HTML report and prints a short summary.

Everything lands in ``--workdir`` (default ``./misuan-demo``), under ``horizontal/``.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from misuan.atomic_files import write_atomic
from misuan.datasets import taiwan
from misuan.errors import JobError
from misuan.ml.metrics import roc_auc
from misuan.node.local import ProcessOptions, run_job_local
from misuan.node.runner import job_dir, read_outputs
from misuan.node.spec import load_spec
from misuan.node.steps.horizontal import read_boosting, read_scorecard
from misuan.report.horizontal_page import render_horizontal_page

__all__ = ["FEATURES", "LENDERS", "HorizontalDemoConfig", "run", "split_lenders"]

AGGREGATOR = "aggregator"
JOB_ID = "horizontal-demo"
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
    """Each lender's training rows (the job's dataset) and hold-out rows (scored afterwards, at home)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, df in tables.items():
        paths[name] = directory / f"{name}.csv"
        write_atomic(paths[name], df[~df["holdout"]].drop(columns="holdout").to_csv(index=False).encode())
        write_atomic(directory / f"{name}-holdout.csv", df[df["holdout"]].drop(columns="holdout").to_csv(index=False).encode())
    return paths


SCORECARD_MIN_IV = 0.1  # a scorecard keeps the features of at least medium predictive power (IV >= 0.1)
STEP_WOE, STEP_SCORECARD, STEP_BOOSTING = "pooled_woe", "scorecard", "boosting"


def job_spec(cfg: HorizontalDemoConfig, data: Mapping[str, Path], job_id: str = JOB_ID,
             features: tuple[str, ...] = FEATURES) -> str:
    """The demo's job spec (TOML): every lender a data party, an aggregator, three horizontal steps."""
    ports = iter(range(50161, 50200))
    lines = ["# Lenders with the same columns on different customers, and an aggregator:",
             "#   misuan simulate job.toml        (each party a process, gRPC + mutual TLS)",
             "version = 1", "", "[job]", f'id = "{job_id}"', "timeout_s = 900", ""]
    for name, path in data.items():
        lines += ["[[party]]", f'name = "{name}"', 'role = "data_party"', f'address = "127.0.0.1:{next(ports)}"',
                  f'dataset = {{ path = "{path.as_posix()}", id_column = "ID", label_column = "{taiwan.LABEL}" }}', ""]
    lines += ["[[party]]", f'name = "{AGGREGATOR}"', 'role = "aggregator"', f'address = "127.0.0.1:{next(ports)}"', ""]
    cols = "[" + ", ".join(f'"{c}"' for c in features) + "]"
    lines += ["[[step]]", 'kind = "horizontal_woe"', f'name = "{STEP_WOE}"',
              f"params = {{ features = {cols}, max_bin = {cfg.max_bin} }}", "",
              "[[step]]", 'kind = "horizontal_scorecard"', f'name = "{STEP_SCORECARD}"',
              f'params = {{ woe_step = "{STEP_WOE}", min_iv = {SCORECARD_MIN_IV}, C = 1.0 }}', "",
              "[[step]]", 'kind = "horizontal_boosting"', f'name = "{STEP_BOOSTING}"',
              f"params = {{ features = {cols}, n_estimators = {cfg.n_estimators}, max_depth = {cfg.max_depth}, "
              f"learning_rate = {cfg.learning_rate}, max_bin = 32 }}", ""]
    return "\n".join(lines)


def _party_state(root: Path, party: str) -> tuple[dict[str, Any], Path]:
    """A party's job state (traffic, ledger head) and its artefact directory."""
    jdir = job_dir(root / "nodes" / party, JOB_ID)
    return json.loads((jdir / "state.json").read_text(encoding="utf-8")), jdir / "artefacts"


def _lender_result(root: Path, name: str, table: pd.DataFrame, cfg: HorizontalDemoConfig, seconds: float) -> dict[str, Any]:
    """What lender ``name`` sees at home: its hold-out AUC alone and with the two federated models it now holds."""
    from xgboost import XGBClassifier

    state, artefacts = _party_state(root, name)
    train, test = table[~table["holdout"]], table[table["holdout"]]
    x, y = train[list(FEATURES)].to_numpy(dtype=float), train[taiwan.LABEL].to_numpy(dtype=float)
    xt, yt = test[list(FEATURES)].to_numpy(dtype=float), test[taiwan.LABEL].to_numpy()
    card = read_scorecard(artefacts / STEP_SCORECARD / "scorecard.json")
    _features, gbdt = read_boosting(artefacts / STEP_BOOSTING / "model.json")
    bins_t = card.bins(xt)
    scores = card.card.score(bins_t)
    low = int(np.argmin(scores)) if scores.size else 0
    alone = XGBClassifier(n_estimators=cfg.n_estimators, max_depth=cfg.max_depth, learning_rate=cfg.learning_rate,
                          max_bin=32, n_jobs=1).fit(x, y)
    return {
        "rows_train": len(train), "rows_holdout": len(test), "bad_rate": float(table[taiwan.LABEL].mean()),
        "auc_alone": roc_auc(yt, alone.predict_proba(xt)[:, 1]),
        "auc_scorecard": roc_auc(yt, card.predict_proba(xt)),
        "auc_boosting": roc_auc(yt, gbdt.predict_proba(xt)[:, 1]),
        "seconds": seconds, "bytes_sent": state["traffic"]["bytes_sent"],
        "bytes_received": state["traffic"]["bytes_received"],
        "ledger_entries": state["ledger_length"], "ledger_head": state["ledger_head"],
        "lr_iterations": card.lr.result_.iterations, "gbdt_rounds": gbdt.model_.rounds,
        "score_median": float(np.median(scores)) if scores.size else 0.0,
        "lowest_score": float(scores[low]) if scores.size else 0.0,
        "lowest_reasons": card.card.reasons(bins_t[low : low + 1])[0] if scores.size else [],
    }


def _aggregator_result(root: Path) -> dict[str, Any]:
    """What the aggregator ended with: the same models, from the sums alone."""
    state, artefacts = _party_state(root, AGGREGATOR)
    outputs = read_outputs(root / "nodes" / AGGREGATOR, JOB_ID)
    card = read_scorecard(artefacts / STEP_SCORECARD / "scorecard.json")
    return {
        "iv": outputs[STEP_WOE]["iv"],
        "scorecard_coef": outputs[STEP_SCORECARD]["coef"], "scorecard_intercept": outputs[STEP_SCORECARD]["intercept"],
        "scorecard_min_iv": SCORECARD_MIN_IV, "scorecard_points": card.card.table(),
        "contributors": outputs[STEP_BOOSTING]["contributors"], "lr_iterations": outputs[STEP_SCORECARD]["iterations"],
        "gbdt_rounds": outputs[STEP_BOOSTING]["rounds"], "bytes_sent": state["traffic"]["bytes_sent"],
        "ledger_entries": state["ledger_length"], "ledger_head": state["ledger_head"],
    }


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
    spec_path = root / "job.toml"
    write_atomic(spec_path, job_spec(cfg, {n: p.relative_to(root) for n, p in paths.items()}).encode())
    spec = load_spec(spec_path)
    t0 = time.perf_counter()
    options = ProcessOptions(spec_path, log_dir=root / "logs", shown=()) if cfg.transport == "processes" else None
    outcomes = run_job_local(spec, workdir=root / "nodes", transport=cfg.transport, processes=options,  # type: ignore[arg-type]
                             progress=None, raise_errors=False)
    wall = time.perf_counter() - t0
    failed = {p: str(o.error) for p, o in outcomes.items() if o.error is not None}
    if failed:
        raise JobError(f"the horizontal demo failed: {failed}; the parties' logs are in {root / 'logs'}")
    pooled = _pooled_reference(tables, cfg)
    rows = [{"name": name, "what": what, **_lender_result(root, name, tables[name], cfg, outcomes[name].seconds),
             "auc_pooled_reference": pooled[name]} for (name, _share, _tilt, what) in LENDERS]
    summary = {
        "generated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "wall_s": wall, "transport": cfg.transport, "aggregator": AGGREGATOR, "features": list(FEATURES),
        "params": {"n_estimators": cfg.n_estimators, "max_depth": cfg.max_depth, "learning_rate": cfg.learning_rate,
                   "woe_bins": cfg.max_bin, "threshold": len(LENDERS) // 2 + 1},
        "lenders": rows, **_aggregator_result(root),
    }
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
