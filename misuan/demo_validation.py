"""The demo's validation report (``misuan-demo/validation.html`` and ``validation.json``): what the
bank's risk function hands its validator after the joint job (:mod:`misuan.report.validation`).

Built from what the bank holds: its step outputs (the joint hold-out PDs, the fairness audit), the
job spec both parties ran, its ledger and the partner's counts as its ledger records them, the
hashes of both model parts (the partner's part hash as the audit bundle would pin it; on one demo
machine both files are here) and the fingerprints of the datasets.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from misuan import __version__
from misuan.atomic_files import write_atomic
from misuan.audit.ledger import Ledger
from misuan.node.spec import JobSpec
from misuan.report.validation import render_validation, validation_document

__all__ = ["write_validation"]

INTENDED_USE = [
    "Probability that a credit-card customer shared by the bank and the partner defaults on next month's payment, "
    "for the bank's approve / decline decision and limit under its lending policy.",
    "Ranking applicants by risk; the PD is calibrated on the shared customers' history (see Calibration).",
]
OUT_OF_SCOPE = [
    "Customers the partner does not know: the joint model needs the partner's features (use the bank-only model).",
    "Other products, terms or populations than the 2005 Taiwanese card book it was trained on.",
    "Pricing by protected attributes, or any decision without the adverse-action reasons the policy gives.",
]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _ledger_summary(path: Path, party: str, job_id: str) -> dict[str, Any]:
    with Ledger(path) as led:
        led.verify()
        entries = led.entries(job_id)
    return {"party": party, "entries": len(entries), "sent": sum(e.discloser == party for e in entries),
            "received": sum(e.recipient == party for e in entries), "verified": True}


def write_validation(cfg: Any, spec: JobSpec, job_id: str, bank_out: Mapping[str, Any], summary: Mapping[str, Any],
                     nodes: Path) -> Path:
    """Write ``validation.json`` and ``validation.html`` into the demo's directory; returns the page."""
    parties = spec.party_names
    parts = {p: nodes / p / "jobs" / job_id / "artefacts" / "secureboost" / "model.json" for p in parties}
    features = {p.name: list(p.dataset.features) if p.dataset and p.dataset.features != "all" else ["(all)"]
                for p in spec.parties}
    sb = bank_out["secureboost"]["params"]
    model = {"name": "SecureBoost PD model, bank + partner", "job_id": job_id, "misuan_version": __version__,
             "type": f"gradient-boosted trees (SecureBoost), {sb.get('n_estimators')} trees of depth {sb.get('max_depth')}",
             "label": "default next month (1) or not (0)", "owner": "the bank (label party)",
             "part_hashes": {p: _sha256(f) for p, f in parts.items()}, "features": features}
    # the challengers' parts are pinned too: the federated scorecard's, where the job trained one
    cards = {p: nodes / p / "jobs" / job_id / "artefacts" / "scorecard" / "scorecard.json" for p in parties}
    if all(f.is_file() for f in cards.values()):
        model["challenger_part_hashes"] = {f"{p}: scorecard (vertical LR)": _sha256(f) for p, f in cards.items()}
    lineage = []
    for p in spec.parties:
        if p.dataset is not None and p.dataset.path is not None:  # the demo's datasets are CSV files
            lineage.append({"party": p.name, "role": p.role, "file": p.dataset.path.name, "sha256": _sha256(p.dataset.path),
                            "rows": int(bank_out["psi"]["rows"]) if p.role == "label_party" else int(summary["psi"]["rows"][p.name])})
    steps = [{"name": s.name, "kind": s.kind, "params": json.dumps(dict(s.params), sort_keys=True)} for s in spec.steps]
    ev = summary["evaluation"]
    fairness = bank_out.get("fairness")
    caveats = [
        "Validated on one hold-out split of the shared customers, not on a later period (out-of-time).",
        "The pooled-data challenger exists only in this demo: in production no party holds both tables.",
        *(fairness or {}).get("findings", []),
        *(fairness or {}).get("model_feature_warnings", []), *(fairness or {}).get("peer_model_feature_warnings", []),
    ]
    doc = validation_document(
        model=model, intended_use=INTENDED_USE, out_of_scope=OUT_OF_SCOPE, lineage=lineage, steps=steps,
        y_true=ev["y_true"], scores=ev["scores"], model_names=ev["model_names"],
        cutoff=float(cfg.lending.policy.max_pd), fairness=fairness,
        ledgers=[_ledger_summary(nodes / p / "ledger.sqlite", p, job_id) for p in parties], caveats=caveats,
    )
    write_atomic(cfg.workdir / "validation.json", json.dumps(doc, indent=2).encode())
    return write_atomic(cfg.workdir / "validation.html", render_validation(doc).encode())
