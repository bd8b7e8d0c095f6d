"""``misuan demo``: the joint credit-risk job on real data, end to end, on one machine.

What it does, as a new user would see it:

1. splits the bundled UCI Taiwan credit-default data (CC BY 4.0) into a *bank* table (labels and
   repayment history) and a *partner* table (demographics, bills, payments), each under its own
   customer IDs with partial overlap (:mod:`misuan.datasets.taiwan`);
2. makes a throw-away certificate authority and one certificate per party;
3. writes the job spec (``demo-job.toml``: PSI -> WOE/IV -> SecureBoost -> evaluation), the very
   file two institutions would run with ``misuan run`` on their own nodes;
4. starts both parties as separate processes that talk gRPC with mutual TLS on loopback;
5. for comparison only, fits a bank-only model and plaintext XGBoost on the joined data (possible
   here because the demo holds both tables; in production nobody can);
6. takes the credit decision: the lending policy turns each hold-out customer's PD from the joint
   model into an approval, a credit limit and a risk-based price within the Chinese caps; the demo
   product (:data:`DEMO_LENDING`) is checked against the caps, one approved customer gets the
   borrower disclosure, one declined customer the adverse-action notice (reasons from the joint
   model's per-customer contributions), and the product's sample promotions go through the copy
   checker;
7. writes a self-contained HTML report and prints a short summary.

Everything lands in ``--workdir`` (default ``./misuan-demo``).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from misuan import __version__
from misuan.atomic_files import write_atomic
from misuan.audit.ledger import Ledger
from misuan.datasets import taiwan
from misuan.demo_validation import write_validation
from misuan.errors import DataError, JobError, MisuanError, NoOverlapError
from misuan.lending.disclosure import MAX_REASONS
from misuan.lending.policy import Reason
from misuan.lending.product import LoanProduct
from misuan.ml.metrics import ks_statistic, roc_auc
from misuan.ml.secureboost import SecureBoostClassifier
from misuan.net.local import free_port, make_test_pki, run_local
from misuan.node.local import PartyExitError, ProcessOptions, run_job_local
from misuan.node.runner import read_outputs
from misuan.node.spec import JobSpec, load_spec
from misuan.node.steps.secureboost import MODEL_FILE
from misuan.report import render_report
from misuan.report.lending_summary import LendingSetup, lending_summary

BANK, PARTNER = "bank", "partner"

# The demo's loan product and policy: a 12-month CNY equal-instalment loan with a 1 % upfront fee, a
# bank's internet consumer loan under the Chinese caps, the policy's default parameters. The data set
# has no income, so every customer gets the same illustrative one: limits differ by PD only.
FAIRNESS_POLICY = "cn"  # the demo's product is a Chinese instalment loan: the CN policy file
DEMO_LENDING = LendingSetup(product=LoanProduct(name="misuan 演示分期贷"))


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    workdir: Path
    n_estimators: int = 20
    max_depth: int = 4
    learning_rate: float = 0.3
    test_fraction: float = 0.3
    seed: int = 0
    key_bits: int = 2048
    lending: LendingSetup = DEMO_LENDING


def run(
    workdir: str | Path, *, trees: int = DemoConfig.n_estimators, depth: int = DemoConfig.max_depth,
    seed: int = DemoConfig.seed, key_bits: int = DemoConfig.key_bits,
) -> int:
    """``misuan demo``: run everything, print the summary; returns the exit status."""
    cfg = DemoConfig(workdir=Path(workdir).resolve(), n_estimators=trees, max_depth=depth, seed=seed, key_bits=key_bits)
    print(format_summary(run_demo(cfg)))
    return 0


# --- preparation ---------------------------------------------------------------------------------
def _toml_str(s: str | Path) -> str:
    return json.dumps(str(s))  # a JSON string is a valid TOML basic string for these paths


def write_spec(cfg: DemoConfig, job_id: str, data: taiwan.DemoTablePaths, ports: dict[str, int]) -> Path:
    """The job spec both parties run; the demo is exactly this spec with loopback addresses."""
    partner_features = ", ".join(json.dumps(c) for c in taiwan.PARTNER_FEATURES)
    bank_features = ", ".join(json.dumps(c) for c in taiwan.BANK_FEATURES)
    text = f"""# misuan demo job: written by `misuan demo`; run it on two real nodes with `misuan run`.
version = 1

[job]
id = {_toml_str(job_id)}
timeout_s = 600

[[party]]
name = "{BANK}"
role = "label_party"
address = "127.0.0.1:{ports[BANK]}"
dataset = {{ path = {_toml_str(data.bank)}, id_column = "{taiwan.ID_COLUMN}", label_column = "{taiwan.LABEL}", features = [{bank_features}] }}

[[party]]
name = "{PARTNER}"
role = "feature_party"
address = "127.0.0.1:{ports[PARTNER]}"
dataset = {{ path = {_toml_str(data.partner)}, id_column = "{taiwan.ID_COLUMN}", features = [{partner_features}] }}

[[step]]
kind = "psi"
name = "psi"
params = {{ reveal = "both", normalize = {{ case = "casefold" }} }}

[[step]]
kind = "woe"
name = "woe"
params = {{ method = "quantile", n_bins = 10, min_bin_size = 50, key_bits = {cfg.key_bits} }}

[[step]]
kind = "secureboost"
name = "secureboost"
params = {{ n_estimators = {cfg.n_estimators}, max_depth = {cfg.max_depth}, learning_rate = {cfg.learning_rate}, test_fraction = {cfg.test_fraction}, split_seed = {cfg.seed}, key_bits = {cfg.key_bits} }}

[[step]]
kind = "vertical_lr"
name = "scorecard"
params = {{ n_bins = 10, binning = "monotonic", tol = 1e-3, reasons = 8, partner_table = "labels", test_fraction = {cfg.test_fraction}, split_seed = {cfg.seed} }}

[[step]]
kind = "evaluate"
name = "evaluate"
params = {{ model_step = "secureboost" }}

[[step]]
kind = "fairness"
name = "fairness"
params = {{ eval_step = "evaluate", approve_below = {cfg.lending.policy.max_pd}, policy = "{FAIRNESS_POLICY}" }}
"""
    return write_atomic(cfg.workdir / "demo-job.toml", text)


def _make_certs(directory: Path) -> Path:
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    make_test_pki(directory, (BANK, PARTNER), name="misuan demo CA")
    return directory


# --- running the parties -------------------------------------------------------------------------
def _launch(spec_path: Path, spec: JobSpec, cfg: DemoConfig, certs: Path, ports: dict[str, int]) -> None:
    """Both parties as OS processes; the bank's progress is shown, the partner's goes to a log."""
    logs = cfg.workdir / "logs"
    outcomes = run_job_local(
        spec, workdir=cfg.workdir / "nodes", transport="processes", raise_errors=False,
        processes=ProcessOptions(spec_path, tls_dir=certs, ports=ports, log_dir=logs, shown=[BANK]),
    )
    failed = {p: o.error.exit_code for p, o in outcomes.items() if isinstance(o.error, PartyExitError)}
    if failed:
        tail = (logs / f"{PARTNER}.log").read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
        raise JobError(
            f"the demo job failed (exit codes {failed}); partner's last log lines: {' | '.join(tail)}; "
            f"full logs in {logs}"
        )


# --- comparison models (demo only: they need both tables in one place) ---------------------------
def _xgb_scores(train_x: pd.DataFrame, train_y: np.ndarray, test_x: pd.DataFrame, cfg: DemoConfig, max_bin: int) -> np.ndarray:
    import xgboost as xgb

    model = xgb.XGBClassifier(
        n_estimators=cfg.n_estimators, max_depth=cfg.max_depth, learning_rate=cfg.learning_rate,
        tree_method="hist", max_bin=max_bin, reg_lambda=1.0, min_child_weight=1.0,
        base_score=float(np.mean(train_y)),  # as SecureBoost: the mean label
        n_jobs=2, random_state=0,
    )
    model.fit(train_x, train_y)
    return np.asarray(model.predict_proba(test_x)[:, 1], dtype=float)


def comparison_scores(cfg: DemoConfig, data: taiwan.DemoTablePaths, bank_eval: dict[str, Any], max_bin: int) -> dict[str, np.ndarray]:
    """Bank-only XGBoost and plaintext XGBoost on the joined rows, on the joint model's split."""
    bank = pd.read_csv(data.bank, dtype={taiwan.ID_COLUMN: str})
    partner = pd.read_csv(data.partner, dtype={taiwan.ID_COLUMN: str})
    bank.index = bank[taiwan.ID_COLUMN].map(taiwan.normalize_demo_id)
    partner.index = partner[taiwan.ID_COLUMN].map(taiwan.normalize_demo_id)
    # training rows sorted: the PSI order is new on every run (fresh blinding keys) and XGBoost's
    # model moves with the order of its training rows; test rows keep the order of bank_eval's labels
    train_ids = sorted(taiwan.normalize_demo_id(i) for i in bank_eval["train_ids"])
    test_ids = [taiwan.normalize_demo_id(i) for i in bank_eval["test_ids"]]
    bank_cols, partner_cols = list(taiwan.BANK_FEATURES), list(taiwan.PARTNER_FEATURES)
    joined = bank[[*bank_cols, taiwan.LABEL]].join(partner[partner_cols], how="inner")
    y_train = joined.loc[train_ids, taiwan.LABEL].to_numpy()
    feats_all = bank_cols + partner_cols
    return {
        "bank_only": _xgb_scores(joined.loc[train_ids, bank_cols], y_train,
                                 joined.loc[test_ids, bank_cols], cfg, max_bin),
        "plaintext": _xgb_scores(joined.loc[train_ids, feats_all], y_train, joined.loc[test_ids, feats_all], cfg, max_bin),
    }


# --- the credit decision -------------------------------------------------------------------------
def _feature_words() -> dict[str, tuple[str, str]]:
    """Each feature in words, English and Chinese (UCI documentation: PAY_0 is the repayment status of
    September 2005, PAY_2 of August ... PAY_6 of April; BILL_AMT1 and PAY_AMT1 are September's, ...)."""
    words = {"LIMIT_BAL": ("Amount of credit the bank has granted", "本行已授予的信用额度"),
             "SEX": ("Sex", "性别"), "EDUCATION": ("Education", "教育程度"), "MARRIAGE": ("Marital status", "婚姻状况"),
             "AGE": ("Age", "年龄")}
    for k, (month, m) in enumerate((("September", 9), ("August", 8), ("July", 7), ("June", 6), ("May", 5), ("April", 4))):
        words[f"PAY_{k + 1 if k else 0}"] = (f"Repayment status in {month} 2005", f"2005年{m}月的还款状态")
        words[f"BILL_AMT{k + 1}"] = (f"Bill amount of {month} 2005", f"2005年{m}月的账单金额")
        words[f"PAY_AMT{k + 1}"] = (f"Amount paid in {month} 2005", f"2005年{m}月的还款金额")
    return words


FEATURE_WORDS = _feature_words()
REASONS_FROM = (
    "the joint model (SecureBoost): the features that raised this customer's score the most, from its per-customer "
    "contributions (Saabas's method on the customer's leaves, as XGBoost's approx_contribs), most adverse first, "
    "leaving out sex, marital status and age (Regulation B). In "
    "production this is the evaluate step's two-party prediction, the partner answering with the same leaf sets and "
    "nothing more; the demo runs it in one process from both parties' model parts. A partner feature is named, its "
    "value stays with the partner."
)


def _reason(code: str, bank_values: Mapping[str, float]) -> Reason:
    """A reason code ``party:feature`` in words; a bank feature with the customer's value."""
    party, _, feature = code.partition(":")
    en, zh = FEATURE_WORDS.get(feature, (feature, feature))
    if party != BANK:
        return Reason(code, f"{en} (information from our partner)", f"{zh}（合作机构数据）")
    v = bank_values[feature]
    if feature.startswith("PAY_") and v >= 1:
        return Reason(code, f"{en}: payment {v:.0f} month{'s' if v >= 2 else ''} late", f"{zh}：逾期{v:.0f}个月")
    return Reason(code, f"{en}: {v:,.0f}", f"{zh}：{v:,.0f}")


def joint_reasons(nodes: Path, job_id: str, data: taiwan.DemoTablePaths, test_ids: Sequence[str],
                  rows: Sequence[int]) -> dict[int, list[Reason]]:
    """The joint model's principal reasons (at most four, most adverse first) for the hold-out rows ``rows``.

    The evaluate step's two-party prediction with per-customer contributions (Saabas, on leaf sets: the
    partner reveals nothing more than for the prediction), run here in one process from both parties'
    model parts and tables, which the demo holds (as for the comparison models)."""
    ids = [taiwan.normalize_demo_id(test_ids[i]) for i in rows]
    parts = {}
    for party, path, columns in ((BANK, data.bank, taiwan.BANK_FEATURES), (PARTNER, data.partner, taiwan.PARTNER_FEATURES)):
        table = pd.read_csv(path, dtype={taiwan.ID_COLUMN: str})
        table.index = table[taiwan.ID_COLUMN].map(taiwan.normalize_demo_id)
        parts[party] = table.loc[ids, list(columns)].reset_index(drop=True)  # the evaluate step's columns
    models = {p: SecureBoostClassifier.load_model(nodes / p / "jobs" / job_id / "artefacts" / "secureboost" / MODEL_FILE)
              for p in parts}

    def explain(party: str) -> Any:
        k = MAX_REASONS + len(PROTECTED_CHARACTERISTICS)  # enough left after the protected ones go
        return lambda ch: models[party].reason_codes(parts[party], channel=ch, k=k, method="saabas")

    codes = run_local({p: explain(p) for p in parts}, job_id=f"{job_id}-reasons")[BANK].result
    bank = parts[BANK].to_dict("records")
    return {i: [_reason(c, bank[k]) for c in _permitted(codes[k])[:MAX_REASONS]] for k, i in enumerate(rows)}


# A notice may not give these as reasons: ECOA / Regulation B (12 CFR 1002.4, 1002.6(b)) forbids
# decisions on sex and marital status and restricts the use of age. The demo's model still uses them
# (the UCI data has them); whether it should is a fair-lending question a validator must answer.
PROTECTED_CHARACTERISTICS = ("SEX", "MARRIAGE", "AGE")


def _permitted(codes: Sequence[str]) -> list[str]:
    return [c for c in codes if c.partition(":")[2] not in PROTECTED_CHARACTERISTICS]


def demo_lending(cfg: DemoConfig, data: taiwan.DemoTablePaths, bank_eval: dict[str, Any], job_id: str,
                 when: datetime.date) -> dict[str, Any]:
    """The report's ``lending`` part: the policy applied to the joint model's hold-out PDs (the bank's)."""
    setup = cfg.lending

    def notice_reasons(declined: Sequence[int]) -> list[tuple[Sequence[Reason], str]]:
        found = joint_reasons(cfg.workdir / "nodes", job_id, data, bank_eval["test_ids"], declined)
        none = "no feature raised this customer's score in the joint model."
        return [(found[i], REASONS_FROM) if found[i] else ((), none) for i in declined]

    return lending_summary(
        [float(v) for v in bank_eval["scores"]], setup, when, model="joint", lender_name="the bank (misuan demo)", notice_reasons=notice_reasons,
        assumptions=[
            "PD: the joint model's hold-out score, the probability of default on the next month's payment (the "
            "data's label), taken as the policy's one-year PD: the figures illustrate, they are not calibrated",
            f"income: the data has none; every customer is given {setup.monthly_income:,.0f} "
            f"{setup.product.currency} a month and no existing debt, so limits differ by PD only",
            f"product: {setup.product.currency} loans under the {setup.product.jurisdiction} caps, applied to "
            "Taiwanese card holders (2005) for illustration only",
        ],
    )


# --- the whole demo ------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class DemoOutcome:
    summary: dict[str, Any]  # the report's input (schema in misuan.report)
    report: Path
    job_seconds: float  # the two-party job itself
    total_seconds: float  # including data preparation and the comparison models
    validation: Path | None = None  # the validation report (model card, fairness audit)


def run_demo(cfg: DemoConfig) -> DemoOutcome:
    t_start = time.monotonic()
    started_at = datetime.datetime.now(datetime.timezone.utc)
    job_id = "demo-" + started_at.strftime("%Y%m%d-%H%M%S")
    cfg.workdir.mkdir(parents=True, exist_ok=True)
    say = lambda msg: print(f"[demo] {msg}", file=sys.stderr, flush=True)  # noqa: E731

    say(f"writing the bank's and the partner's tables to {cfg.workdir / 'data'}")
    data = taiwan.write_demo_tables(cfg.workdir / "data", seed=cfg.seed)
    certs = _make_certs(cfg.workdir / "certs")
    ports = {BANK: free_port(), PARTNER: free_port()}
    spec_path = write_spec(cfg, job_id, data, ports)
    spec = load_spec(spec_path)
    say(f"job {job_id}: bank and partner start as separate processes (gRPC + mutual TLS on loopback)")
    t_job = time.monotonic()
    _launch(spec_path, spec, cfg, certs, ports)
    job_seconds = time.monotonic() - t_job

    nodes = cfg.workdir / "nodes"
    outs = {p: read_outputs(nodes / p, job_id) for p in (BANK, PARTNER)}
    bank_eval = outs[BANK]["evaluate"]
    if outs[BANK]["psi"]["size"] == 0:
        raise NoOverlapError("the bank and the partner share no customers")
    say("fitting the comparison models (bank-only, and plaintext XGBoost on pooled data)")
    max_bin = int(outs[BANK]["secureboost"]["params"].get("max_bin", 32))
    comp = comparison_scores(cfg, data, bank_eval, max_bin)

    say("taking the credit decisions: lending policy, caps, disclosure, notice and copy checks")
    summary = build_summary(cfg, spec, job_id, started_at, outs, comp, nodes)
    summary["lending"] = demo_lending(cfg, data, bank_eval, job_id, started_at.date())
    report = render_report(summary, cfg.workdir / "report.html")
    validation = write_validation(cfg, spec, job_id, outs[BANK], summary, nodes)
    return DemoOutcome(summary, report, job_seconds, time.monotonic() - t_start, validation)


def _ledger_section(nodes: Path, party: str, job_id: str) -> dict[str, Any]:
    ledger = Ledger(nodes / party / "ledger.sqlite")
    try:
        verified = True
        try:
            ledger.verify()
        except MisuanError:
            verified = False
        entries = [e.as_dict() for e in ledger.entries(job_id=job_id)]  # rows as export_json writes them
        return {"party": party, "head": ledger.head() or "", "verified": verified, "entries": entries}
    finally:
        ledger.close()


def build_summary(
    cfg: DemoConfig, spec: Any, job_id: str, started_at: datetime.datetime, outs: dict[str, Any],
    comp: dict[str, np.ndarray], nodes: Path,
) -> dict[str, Any]:
    bank_out, partner_out = outs[BANK], outs[PARTNER]
    ev = bank_out["evaluate"]
    sb = bank_out["secureboost"]
    state = {p: json.loads((nodes / p / "jobs" / job_id / "state.json").read_text(encoding="utf-8")) for p in (BANK, PARTNER)}
    steps = [
        {"name": s.name, "kind": s.kind, "seconds": float(bank_out[s.name].get("seconds", 0.0)), "status": "done"}
        for s in spec.steps
    ]
    cpu = f"{os.cpu_count()} cores, {platform.machine()}, {platform.system()} {platform.release()}, Python {platform.python_version()}"
    return {
        "job": {
            "job_id": job_id,
            "title": "Joint credit-risk model: bank + partner (misuan demo)",
            "started_at": started_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "machine": cpu,
            "dataset": "UCI default of credit card clients (Yeh & Lien 2009), CC BY 4.0",
            "misuan_version": __version__,
            "parties": [
                {"name": BANK, "role": "label_party", "rows": int(bank_out["psi"]["rows"]),
                 "columns": len(taiwan.BANK_FEATURES) + 1,
                 "bytes_sent": int(state[BANK].get("traffic", {}).get("bytes_sent", 0)),
                 "bytes_received": int(state[BANK].get("traffic", {}).get("bytes_received", 0))},
                {"name": PARTNER, "role": "feature_party", "rows": int(partner_out["psi"]["rows"]),
                 "columns": len(taiwan.PARTNER_FEATURES),
                 "bytes_sent": int(state[PARTNER].get("traffic", {}).get("bytes_sent", 0)),
                 "bytes_received": int(state[PARTNER].get("traffic", {}).get("bytes_received", 0))},
            ],
            "steps": steps,
        },
        "psi": {
            "rows": {BANK: int(bank_out["psi"]["rows"]), PARTNER: int(partner_out["psi"]["rows"])},
            "intersection_size": int(bank_out["psi"]["size"]),
            "mode": "both",
            "normalization": "strip surrounding spaces, case-fold",
            "seconds": float(bank_out["psi"].get("seconds", 0.0)),
        },
        "iv": bank_out["woe"]["features"],
        "evaluation": {
            "dataset": f"hold-out: {cfg.test_fraction:.0%} of the shared customers ({len(ev['y_true'])} rows)",
            "n_train": int(len(ev["train_ids"])),
            "y_true": [int(v) for v in ev["y_true"]],
            "scores": {"joint": [float(v) for v in ev["scores"]], **_scorecard_scores(bank_out, ev),
                       "bank_only": comp["bank_only"].tolist(), "plaintext": comp["plaintext"].tolist()},
            "model_names": {"joint": "SecureBoost, bank + partner (private)",
                            "scorecard": "Scorecard (vertical LR), bank + partner (private)",
                            "bank_only": "XGBoost, bank features only",
                            "plaintext": "XGBoost, pooled raw data (reference only)"},
        },
        "feature_importance": sb["feature_importance"],
        "ledgers": [_ledger_section(nodes, p, job_id) for p in (BANK, PARTNER)],
        "secureboost": {k: v for k, v in sb["params"].items() if isinstance(v, (int, float, str, bool))},
        **_scorecard_summary(bank_out),
    }


def _scorecard_scores(bank_out: dict[str, Any], ev: dict[str, Any]) -> dict[str, list[float]]:
    """The scorecard's PDs of the evaluation's hold-out customers, in the evaluation's order (the two
    steps hold out the same customers: the same fraction and seed of the same ID hash)."""
    sc = bank_out.get("scorecard")
    if not sc or "pd" not in sc:
        return {}
    by_id = dict(zip(sc["test_ids"], sc["pd"], strict=True))
    if set(by_id) != set(ev["test_ids"]):
        raise DataError("the scorecard and the evaluation held out different customers")
    return {"scorecard": [float(by_id[i]) for i in ev["test_ids"]]}


def _scorecard_summary(bank_out: dict[str, Any]) -> dict[str, Any]:
    sc = bank_out.get("scorecard")
    if not sc or "auc" not in sc:
        return {}
    return {"scorecard": {"auc": float(sc["auc"]), "ks": float(sc["ks"]), "iterations": int(sc["iterations"]),
                          "rows": [*sc["scorecard"], *({"party": PARTNER, **r} for r in sc.get("partner_table", []))],  # rows name their party
                          # the reasons an applicant would be given: the step's 8, protected attributes left out
                          "examples": [{**e, "reasons": _permitted(e["reasons"])[:MAX_REASONS]} for e in sc["examples"]]}}


def _lending_lines(lending: dict[str, Any]) -> list[str]:
    d, p = lending["decisions"], lending["product"]
    n, approved = len(d["approved"]), sum(d["approved"])
    limits = [x for x, ok in zip(d["limit"], d["approved"], strict=True) if ok]
    mean = f"{sum(limits) / len(limits):,.0f} {p['currency']}" if limits else "-"
    failed = [c["rule_id"] for c in p["caps"] if c["status"] == "fail"]
    verdict = f"FAIL ({', '.join(failed)})" if failed else f"pass ({', '.join(c['rule_id'] for c in p['caps'])})"
    return [
        f"  Credit decisions on the joint PDs: {approved} of {n} approved ({approved / max(n, 1):.1%}), mean limit {mean}",
        f"  Product at its highest rate ({p['annual_rate']:.2%} nominal, {p['upfront_fee_rate'] * 100:g}% fee): "
        f"annualised {p['annualised_simple']:.2%} simple, {p['annualised_compound']:.2%} compound; "
        f"{p['jurisdiction']} caps {verdict}",
    ]


def _fairness_lines(summary: dict[str, Any], outcome: DemoOutcome) -> list[str]:
    if outcome.validation is None:
        return []
    doc = json.loads(outcome.validation.with_suffix(".json").read_text(encoding="utf-8"))
    fair = doc.get("fairness") or {}
    ratios = ", ".join(f"{a['attribute']} {a['approval_ratio']:.2f}" for a in fair.get("audits", []))
    warned = len(fair.get("peer_model_feature_warnings", [])) + len(fair.get("model_feature_warnings", []))
    return [f"  Fairness ({fair.get('policy', '-')} policy, the partner's attributes summed under encryption): "
            f"approval-rate ratios {ratios or '-'}; {len(fair.get('findings', []))} finding(s), "
            f"{warned} protected attribute(s) used as model features",
            f"  Validation report: {outcome.validation}"]


def format_summary(outcome: DemoOutcome) -> str:
    summary = outcome.summary
    ev = summary["evaluation"]
    y = np.asarray(ev["y_true"])
    rows = []
    for key in ("joint", "bank_only", "plaintext", "scorecard"):
        if key in ev["scores"]:
            s = np.asarray(ev["scores"][key])
            rows.append((ev["model_names"][key], roc_auc(y, s), ks_statistic(y, s)))
    top = sorted((f for f in summary["iv"] if f["party"] == PARTNER), key=lambda f: -f["iv"])[:5]
    psi = summary["psi"]
    lines = [
        "",
        "misuan demo: joint credit-risk model, bank + partner",
        f"  job {summary['job']['job_id']} finished in {outcome.total_seconds:.0f} s "
        f"(the two-party job {outcome.job_seconds:.0f} s)",
        f"  PSI: bank {psi['rows'][BANK]} rows, partner {psi['rows'][PARTNER]} rows -> "
        f"{psi['intersection_size']} shared customers",
        "  Top partner features by information value (computed without the partner seeing labels):",
        *[f"    {f['feature']:<12} IV {f['iv']:.3f}" for f in top],
        "  Hold-out evaluation:",
        *[f"    {name:<50} AUC {auc:.4f}  KS {ks:.4f}" for name, auc, ks in rows],
        f"  Value of the partner's data: AUC {rows[0][1] - rows[1][1]:+.4f};  "
        f"cost of privacy vs pooled data: AUC {rows[2][1] - rows[0][1]:+.4f}",
        *(_lending_lines(summary["lending"]) if "lending" in summary else []),
        *_fairness_lines(summary, outcome),
        f"  Report: {outcome.report}",
        "",
    ]
    return "\n".join(lines)
