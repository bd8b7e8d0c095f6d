"""The HTML report of a joint credit-risk job, for a risk officer and an auditor.

``render_report(summary, path)`` writes one self-contained HTML file (inline CSS, inline SVG plots, no
scripts, nothing loaded from the network) atomically, and returns its path.

The ``summary`` schema
----------------------
A JSON-able dict, parsed and checked by :meth:`misuan.report.schema.Summary.from_dict` (the dataclasses
in :mod:`misuan.report.schema` are the authoritative schema, with those the steps write declared
below the node in :mod:`misuan.ml.outputs`; keys marked ``?`` are optional). A missing
or unknown key, a wrong type, a non-finite number or a party name that is not one of the job's parties
raises :class:`misuan.errors.DataError` naming the path, e.g. ``summary.iv[3].bins[0].woe``::

    {
      "job": {
        "job_id": "demo-2026-11-23", "title"?: "Joint credit-risk model",
        "started_at": "2026-11-23T10:00:00Z", "finished_at": "2026-11-23T10:12:41Z",   # ISO 8601
        "machine": "2 cores, 4 GiB, Debian 12", "dataset"?: "...", "misuan_version"?: "0.1.0",
        "parties": [
          {"name": "bank", "role": "label_party", "rows": 25500, "columns": 7,
           "organisation"?: "Example Bank", "machine"?: "", "bytes_sent"?: 123, "bytes_received"?: 456},
          {"name": "partner", "role": "feature_party", "rows": 24000, "columns": 16}
        ],
        "steps"?: [{"name": "psi", "kind": "psi", "seconds": 12.5, "status"?: "done"}]
      },
      "psi": {"rows": {"bank": 25500, "partner": 24000}, "intersection_size": 21000,
              "mode": "both",                 # who learned the shared IDs: "both" | "size" | a party name
              "normalization"?: "strip, case-fold", "seconds"?: 12.5},
      "iv": [                                 # one per feature, any order (the report sorts by IV)
        {"feature": "PAY_0", "party": "bank", "iv": 0.87, "ks"?: 0.31, "monotonic"?: true, "method"?: "quantile",
         "trend"?: "decreasing", "n_rows"?: 21000, "n_positives"?: 4650, "edges_shared"?: true,
         "bins": [{"label": "(-inf, 0]", "count": 5000, "positives": 700, "woe": 0.55,
                   "contains_missing"?: false, "index"?: 0, "lower"?: "-inf", "upper"?: 0.0, "iv"?: 0.04}]}
      ],                                      # = FeatureWoe.to_dict() of the WOE step, plus "party"
      "evaluation": {                         # hold-out predictions; AUC, KS and curves are computed here
        "dataset": "hold-out: 30 % of the shared customers", "n_train"?: 14700,
        "y_true": [0, 1, ...],                # 1 = defaulted
        "scores": {"joint": [...], "bank_only": [...], "plaintext"?: [...]},  # predicted PD, same length
        "model_names"?: {"joint": "SecureBoost (bank + partner)"}
      },
      "feature_importance": [{"feature": "PAY_0", "party": "bank", "gain": 812.4, "splits": 41}],
      "ledgers": [                            # each party's ledger, exported after the job
        {"party": "bank", "head": "9f2c...", "verified": true, "verified_at"?: "...", "note"?: "",
         "entries": [{"step": "psi", "discloser": "partner", "recipient": "bank",
                      "what": "intersection size", "shape": [], "form": "plaintext", "detail"?: {},
                      "seq"?: 3, "job_id"?: "", "recorded_at"?: "", "prev_hash"?: "", "hash"?: ""}]}
      ],                                      # entries = the "rows" of Ledger.export_json
      "secureboost": {"n_trees": 30, "max_depth": 4, "learning_rate": 0.3, "he_scheme": "ou", ...},
      "woe_definition"?: "WOE = ln(share of goods in the bin / share of bads in the bin)",
      "lending"?: {                           # credit decisions from evaluation.scores[model]; see
        "decisions": {"model": "joint",       # misuan.report.lending_schema, built by lending_summary
                      "approved": [...], "limit": [...], "rate": [...],   # parallel to evaluation.y_true
                      "rate_cap": 0.24, "amount_cap": 200000.0, "policy"?: {...}, "cap_rules"?: [...],
                      "decline_reasons"?: {"PD_HIGH": 3041}},
        "product": {"name": ..., "term_months": 12, "upfront_fee_rate": 0.01, "currency": "CNY",
                    "jurisdiction": "CN", "lender": "bank_internet", "contract_date": "2026-11-23",
                    "principal": ..., "annual_rate": ..., "annualised_simple": ..., "annualised_compound": ...,
                    "caps": [CapCheck.as_dict() rows], "not_checked"?: [...], "basis"?: "..."},
        "example_loan"?: {"applicant": 17, "principal": ..., "annual_rate": ..., "term_months": 12,
                          "upfront_fee": ..., "start": "2026-11-23", "currency"?: "CNY"},
        "notice"?: {"applicant": 5, "reasons": [{"code", "en", "zh"}], "reasons_from": "...",
                    "policy_reasons"?: ["PD_HIGH"], "explained"?: 4430, "lender"?: "", "decided_on"?: ""},
        "copy_checks"?: [{"label": "violating", "text": "...", "terms"?: "...",
                          "findings": [{"rule_id", "severity", "title", "start", "end", "text", ...}]}],
        "assumptions"?: ["..."]
      }
    }

Derived in the report: AUC, Gini, KS and ROC/KS curves of each model (:mod:`misuan.ml.metrics`), the
value of partner data (joint AUC - bank-only AUC), the cost of privacy (plaintext AUC - joint AUC; "not
measured" without a plaintext baseline, which needs both tables on one machine), IV
strength labels (below 0.02 not predictive, to 0.1 weak, to 0.3 medium, to 0.5 strong, above: check
for leakage), WOE monotonicity where not given, whether two parties' ledgers agree, and with ``lending``
the decisions by PD band and the borrower disclosure and adverse-action notice (by misuan.lending).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from misuan.report.render import iv_strength, render_html, write_html
from misuan.report.schema import Summary

__all__ = ["Summary", "iv_strength", "render_report"]


def render_report(summary: dict[str, Any] | Summary, path: str | Path, *, generated_at: str | None = None) -> Path:
    """Check ``summary`` (schema above), render it and write the HTML to ``path`` atomically.

    ``generated_at`` is the time printed in the footer (default: now, UTC); fix it for a reproducible file.
    """
    if isinstance(summary, Summary):
        summary.check()
        parsed = summary
    else:
        parsed = Summary.from_dict(summary)
    return write_html(render_html(parsed, generated_at=generated_at), path)
