"""A synthetic report summary shaped like a real demo job's, for tests, screenshots and documentation.

Nothing here is a result: scores come from a made-up latent model, WOE bins from made-up bad rates (with
WOE and IV computed from them consistently), and ledger entries follow the steps the demo runs (PSI,
secure WOE/IV, SecureBoost, evaluation), each one of its protocol's catalogue entries (the ``what``
and ``form`` of ``misuan.protocols.<name>.disclosures``). The lending part applies the real lending
policy and checks (:func:`misuan.report.lending_summary.lending_summary`) to the made-up joint scores;
the declined customer's reasons are made up. ``sample_summary()`` returns a plain dict that passes
:meth:`misuan.report.schema.Summary.from_dict`.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
from collections.abc import Callable
from typing import Any

import numpy as np

from misuan.datasets.taiwan import BANK_FEATURES, PARTNER_FEATURES
from misuan.lending.policy import Reason
from misuan.lending.product import LoanProduct
from misuan.net.disclosure import DisclosureKind
from misuan.protocols.psi import disclosures as psi
from misuan.protocols.secureboost import disclosures as sb
from misuan.protocols.woe import disclosures as woe
from misuan.report.lending_summary import LendingSetup, lending_summary

__all__ = ["sample_summary"]

# made-up strength of each feature's signal, roughly as strong as in the Taiwan data
_SIGNAL = {
    "LIMIT_BAL": 0.5, "PAY_0": 1.4, "PAY_2": 1.05, "PAY_3": 0.9, "PAY_4": 0.8, "PAY_5": 0.75, "PAY_6": 0.7,
    "SEX": 0.1, "EDUCATION": 0.2, "MARRIAGE": 0.08, "AGE": 0.15,
    "BILL_AMT1": 0.07, "BILL_AMT2": 0.07, "BILL_AMT3": 0.08, "BILL_AMT4": 0.08, "BILL_AMT5": 0.07,
    "BILL_AMT6": 0.08, "PAY_AMT1": 0.45, "PAY_AMT2": 0.45, "PAY_AMT3": 0.4, "PAY_AMT4": 0.38,
    "PAY_AMT5": 0.37, "PAY_AMT6": 0.36,
}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _bins(rng: np.random.Generator, feature: str, n: int, base_rate: float) -> list[dict[str, Any]]:
    """Bins with counts and bad rates that trend with the feature's signal; WOE computed from them."""
    k = int(rng.integers(4, 9))
    edges = np.sort(rng.choice(np.arange(1, 40), size=k - 1, replace=False)) * 1000
    share = rng.dirichlet(np.full(k, 4.0))
    counts = np.maximum((share * n).astype(int), 30)
    trend = np.linspace(-1, 1, k) * _SIGNAL[feature] * (1 if rng.random() < 0.7 else -1)
    if rng.random() < 0.3:  # a few non-monotonic features
        trend = trend + rng.normal(0, 0.35 * _SIGNAL[feature] + 0.05, k)
    rate = _sigmoid(np.log(base_rate / (1 - base_rate)) + trend)
    bads = np.clip(rng.binomial(counts, rate), 1, counts - 1)
    goods = counts - bads
    woe = np.log((goods / goods.sum()) / (bads / bads.sum()))
    labels = [f"< {edges[0]:,}"] + [f"[{a:,}, {b:,})" for a, b in zip(edges[:-1], edges[1:], strict=True)] + [f"≥ {edges[-1]:,}"]
    return [
        {
            "index": i,
            "label": labels[i],
            "lower": float(edges[i - 1]) if i else "-inf",
            "upper": float(edges[i]) if i < k - 1 else "inf",
            "contains_missing": False,
            "count": int(counts[i]),
            "positives": int(bads[i]),
            "woe": float(woe[i]),
        }
        for i in range(k)
    ]


def _iv(bins: list[dict[str, Any]]) -> tuple[float, float]:
    counts = np.array([b["count"] for b in bins])
    bads = np.array([b["positives"] for b in bins])
    goods = counts - bads
    g, b = goods / goods.sum(), bads / bads.sum()
    iv = float(np.sum((g - b) * np.array([x["woe"] for x in bins])))
    order = np.argsort([x["woe"] for x in bins])  # riskiest bin first
    ks = float(np.max(np.abs(np.cumsum(b[order]) - np.cumsum(g[order]))))
    return iv, ks


def _ledger_entries(n_bank: int, n_partner: int, n_shared: int, n_trees: int, depth: int) -> list[dict[str, Any]]:
    """The entries the demo's job records, each one of the protocols' catalogue entries (``what``
    and ``form`` from ``misuan.protocols.<name>.disclosures``), the bank being the label party."""
    e: list[dict[str, Any]] = []

    def add(step: str, kind: DisclosureKind, frm: str, to: str, shape: list[int], **detail: Any) -> None:
        e.append({"step": step, "discloser": frm, "recipient": to, "what": kind.what, "shape": shape,
                  "form": kind.form, "detail": detail})

    # PSI with reveal = "both": each side's set size and blinded IDs, the other's IDs blinded again
    # (in the other's order), and the intersection
    sizes = {"bank": n_bank, "partner": n_partner}
    for frm, to in (("bank", "partner"), ("partner", "bank")):
        add("psi", psi.SET_SIZE, frm, to, [], n=sizes[frm])
        add("psi", psi.BLINDED_IDS, frm, to, [sizes[frm]])
        add("psi", psi.DIGESTS_IN_ORDER, frm, to, [sizes[to]])
        add("psi", psi.INTERSECTION, frm, to, [n_shared], size=n_shared)
    # WOE/IV of the partner's features, quantile bins, edges shared (IV shared back, for the sample)
    add("woe", woe.ENCRYPTED_LABELS, "bank", "partner", [n_shared], scheme="ou", key_bits=2048)
    for f in PARTNER_FEATURES:
        add("woe", woe.BIN_COUNTS, "partner", "bank", [8, 2], feature=f, min_bin_size=50)
        add("woe", woe.BIN_EDGES, "partner", "bank", [7], feature=f)
    add("woe", woe.IV_PER_FEATURE, "bank", "partner", [len(PARTNER_FEATURES)])
    _secureboost_entries(add, n_shared, n_trees, depth)
    return e


def _secureboost_entries(add: Callable[..., None], n_shared: int, n_trees: int, depth: int) -> None:
    """SecureBoost trained on 70 % of the shared customers, scored on the other 30 % per tree, then
    the evaluation step's prediction of the hold-out."""
    n_holdout = int(n_shared * 0.3)
    n_train = n_shared - n_holdout
    add("secureboost", sb.SCHEMA, "partner", "bank", [len(PARTNER_FEATURES)])
    add("secureboost", sb.PUBLIC_KEY, "bank", "partner", [], scheme="ou", bits=2048)
    for t in range(n_trees):
        add("secureboost", sb.GRADIENTS, "bank", "partner", [n_train], tree=t)
        for d in range(depth):
            nodes = 2**d
            add("secureboost", sb.NODE_ROWS, "bank", "partner", [n_train], tree=t, depth=d, nodes=nodes)
            add("secureboost", sb.HISTOGRAMS, "partner", "bank", [max(1, nodes // 2), len(PARTNER_FEATURES)],
                tree=t, depth=d)
            add("secureboost", sb.SPLIT_CHOICE, "bank", "partner", [max(1, nodes // 3), 3], tree=t, depth=d)
            add("secureboost", sb.PARTITION, "partner", "bank", [n_train // 3], tree=t, depth=d)
        add("secureboost", sb.DECISIONS, "partner", "bank", [n_holdout, 1], purpose="eval")
    add("evaluate", sb.DECISIONS, "partner", "bank", [n_holdout, n_trees], purpose="predict")


def _chain_head(party: str, entries: list[dict[str, Any]]) -> str:
    head = hashlib.sha256(f"ledger of {party}".encode()).digest()
    for entry in entries:
        head = hashlib.sha256(head + json.dumps(entry, sort_keys=True).encode()).digest()
    return head.hex()


def _holdout(rng: np.random.Generator, n_holdout: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Labels and model scores of the hold-out customers from a made-up latent model: the bank's signal
    plus a smaller partner signal."""
    s_bank = rng.normal(size=n_holdout)
    s_partner = rng.normal(size=n_holdout)
    y = (rng.random(n_holdout) < _sigmoid(-1.55 + 1.1 * s_bank + 0.55 * s_partner)).astype(int)
    noise = rng.normal(0, 0.12, n_holdout)
    scores = {
        "joint": _sigmoid(-1.5 + 1.02 * s_bank + 0.5 * s_partner + noise),
        "bank_only": _sigmoid(-1.45 + 1.05 * s_bank + rng.normal(0, 0.1, n_holdout)),
        "plaintext": _sigmoid(-1.5 + 1.05 * s_bank + 0.52 * s_partner + 0.8 * noise),
        "scorecard": _sigmoid(-1.5 + 0.98 * s_bank + 0.47 * s_partner + 1.2 * noise),
    }
    return y, scores


def _iv_entries(rng: np.random.Generator, n_shared: int) -> list[dict[str, Any]]:
    iv: list[dict[str, Any]] = []
    for party, features in (("bank", BANK_FEATURES), ("partner", PARTNER_FEATURES)):
        for f in features:
            bins = _bins(rng, f, n_shared, 0.2212)
            value, ks = _iv(bins)
            iv.append({"feature": f, "party": party, "method": "quantile", "iv": value, "ks": ks, "bins": bins})
    iv[-1]["bins"].append(
        {"index": len(iv[-1]["bins"]), "label": "missing", "lower": None, "upper": None, "contains_missing": True,
         "count": 120, "positives": 40, "woe": -0.57}
    )
    return iv


def _importance(rng: np.random.Generator) -> list[dict[str, Any]]:
    return [
        {
            "feature": f,
            "party": party,
            "gain": float(_SIGNAL[f] ** 2 * 900 * rng.uniform(0.6, 1.4)),
            "splits": int(rng.integers(2, 40)),
        }
        for party, features in (("bank", BANK_FEATURES), ("partner", PARTNER_FEATURES))
        for f in features
    ]


def _ledgers(n_bank: int, n_partner: int, n_shared: int, n_trees: int, depth: int) -> list[dict[str, Any]]:
    entries = _ledger_entries(n_bank, n_partner, n_shared, n_trees, depth)
    ledgers = []
    for party in ("bank", "partner"):
        # each party's ledger holds its own copy of the entries it is part of
        mine = copy.deepcopy([x for x in entries if party in (x["discloser"], x["recipient"])])
        ledgers.append({"party": party, "head": _chain_head(party, mine), "verified": True,
                        "verified_at": "2026-11-23T10:14:03Z", "entries": mine})
    return ledgers


def _job(seed: int, n_bank: int, n_partner: int) -> dict[str, Any]:
    return {
        "job_id": f"taiwan-demo-{seed:04d}",
        "title": "Joint credit-risk model: Example Bank × Example Partner",
        "started_at": "2026-11-23T10:00:00Z",
        "finished_at": "2026-11-23T10:13:58Z",
        "machine": "2 vCPU (shared), 4 GiB, Debian 12, Python 3.11 — synthetic sample, not a measurement",
        "dataset": "UCI default of credit card clients (Yeh & Lien 2009), CC BY 4.0, split into two institutions",
        "misuan_version": "0.1.0",
        "parties": [
            {"name": "bank", "role": "label_party", "organisation": "Example Bank", "rows": n_bank,
             "columns": len(BANK_FEATURES), "bytes_sent": 912_400_000, "bytes_received": 1_530_000_000},
            {"name": "partner", "role": "feature_party", "organisation": "Example Partner", "rows": n_partner,
             "columns": len(PARTNER_FEATURES), "bytes_sent": 1_530_000_000, "bytes_received": 912_400_000},
        ],
        "steps": [
            {"name": "psi", "kind": "psi", "seconds": 14.2},
            {"name": "woe", "kind": "woe", "seconds": 95.4},
            {"name": "secureboost", "kind": "secureboost", "seconds": 702.9},
            {"name": "baselines", "kind": "plaintext_baseline", "seconds": 3.1},
            {"name": "evaluate", "kind": "evaluate", "seconds": 22.4},
        ],
    }


# made up, in the form of the demo's reasons (the joint model's per-customer contributions)
_SAMPLE_REASONS = (
    Reason("bank:PAY_0", "Repayment status in September 2005: payment 2 months late", "2005年9月的还款状态：逾期2个月"),
    Reason("partner:PAY_AMT1", "Amount paid in September 2005 (information from our partner)",
           "2005年9月的还款金额（合作机构数据）"),
    Reason("bank:LIMIT_BAL", "Amount of credit the bank has granted: 30,000", "本行已授予的信用额度：30,000"),
)


def _lending(joint_scores: np.ndarray) -> dict[str, Any]:
    setup = LendingSetup(product=LoanProduct(name="Example Bank 分期贷"))
    return lending_summary(
        joint_scores.tolist(), setup, dt.date(2026, 11, 23), lender_name="Example Bank",
        notice_reasons=lambda rows: [(_SAMPLE_REASONS, "made up for this synthetic sample")] * len(rows),
        assumptions=["synthetic sample: the PDs are the made-up joint scores above, not a model's",
                     f"every customer is given a monthly income of {setup.monthly_income:,.0f} CNY and no existing debt"],
    )


def sample_summary(seed: int = 0, *, n_holdout: int = 6300) -> dict[str, Any]:
    """A complete, valid, made-up summary (see the module docstring)."""
    rng = np.random.default_rng(seed)
    n_bank, n_partner, n_shared = 25_500, 24_000, 21_000
    n_trees, depth = 30, 4
    # the draws from rng happen in this order: hold-out, then IV bins, then importance
    y, scores = _holdout(rng, n_holdout)
    iv = _iv_entries(rng, n_shared)
    importance = _importance(rng)
    return {
        "job": _job(seed, n_bank, n_partner),
        "psi": {
            "rows": {"bank": n_bank, "partner": n_partner},
            "intersection_size": n_shared,
            "mode": "both",
            "normalization": "strip surrounding white space, case-fold",
            "seconds": 14.2,
        },
        "iv": iv,
        "evaluation": {
            "dataset": "hold-out: 30 % of the shared customers, stratified by default",
            "n_train": n_shared - n_holdout,
            "y_true": y.tolist(),
            "scores": {k: v.tolist() for k, v in scores.items()},
        },
        "feature_importance": importance,
        "ledgers": _ledgers(n_bank, n_partner, n_shared, n_trees, depth),
        "secureboost": {
            "n_trees": n_trees, "max_depth": depth, "learning_rate": 0.3, "lambda": 1.0, "gamma": 0.0,
            "min_child_weight": 1.0, "max_bins": 32, "objective": "binary:logistic", "he_scheme": "ou",
            "key_bits": 2048, "fixed_point_bits": 53, "seed": seed,
        },
        "lending": _lending(scores["joint"]),
        "scorecard": _scorecard(seed),
    }


def _scorecard(seed: int) -> dict[str, Any]:
    """A made-up federated scorecard: a few of the bank's bins with points, and held-out examples (the
    hold-out's scorecard PDs are the evaluation's ``scorecard`` scores)."""
    rng = np.random.default_rng(seed + 7)
    rows = [{"feature": f, "bin": b, "count": int(n), "event_rate": round(float(r), 4), "points": round(float(p), 1)}
            for f in ("LIMIT_BAL", "PAY_0") for b, n, r, p in zip(("[-inf, 50000)", "[50000, 200000)", "[200000, inf)", "missing"),
                                                                  rng.integers(800, 6000, 4), rng.uniform(0.1, 0.35, 4),
                                                                  27 + rng.normal(0, 8, 4), strict=True)]
    rows += [{"feature": "PAY_AMT1", "bin": b, "party": "partner"} for b in ("[-inf, 1000)", "[1000, inf)", "missing")]
    examples = [{"score": round(float(sc), 1), "pd": float(1 / (1 + np.exp((sc - 512.9) / 28.85))),
                 "reasons": ["bank:PAY_0", "partner:PAY_AMT1", "bank:LIMIT_BAL"][: 1 + i % 3]}
                for i, sc in enumerate(rng.normal(560, 45, 5))]
    return {"auc": 0.7712, "ks": 0.4105, "iterations": 11, "rows": rows, "examples": examples}
