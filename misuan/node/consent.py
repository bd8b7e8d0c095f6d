"""Consent: a node runs a job only after its operator has seen what the job discloses and approved it.

When a job spec reaches a node (``misuan submit``), the node computes its **preview**
(:func:`preview_job`): from the disclosure catalogues of the protocols its steps speak
(:mod:`misuan.node.steps.preview`), exactly what this party will send and learn, per step: what, to
or from whom, in which form, under which condition; and which trust anchors it accepts for each
party. The job then waits in ``<data_dir>/pending/`` until the operator decides:

    misuan node pending --config node.toml            # jobs awaiting a decision
    misuan node show JOB --config node.toml [--html preview.html]
    misuan node approve JOB --config node.toml [--standing] [--operator NAME]
    misuan node refuse JOB --config node.toml --reason "..."

A decision (:class:`Decision`) is signed with the node's TLS key (ECDSA P-256, SHA-256, over the
canonical JSON of its fields: job id, spec hash, the template hash, the decision, reason, operator,
time) and written to ``<data_dir>/approvals/``; the node records it in its ledger (step
``job/consent``) before the job runs or is filed as refused. While a job waits, its peers' pings are
answered "awaiting approval", so they wait and say so; a refused job answers with the reason and
both sides end with :class:`~misuan.errors.JobRefusedError`.

A **standing** approval covers a spec template: the same parties, roles, steps and parameters under
any job id (re-runs on new data: dataset paths are local and not part of it). ``approval = "auto"``
in node.toml turns consent off for a node (tests, a party that only ever runs its own jobs); its
decisions are recorded as ``auto``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import getpass
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from misuan.audit.ledger import Ledger, write_json_atomic
from misuan.crypto.signing import certificate_fingerprint, sign_with_key, verify_with_certificate
from misuan.crypto.trust import TrustAnchors, fingerprint
from misuan.errors import AuthenticationError, ConfigError, JobSpecError
from misuan.net.disclosure import Disclosure
from misuan.node.spec import JobSpec, NodeConfig, canonical_json
from misuan.node.steps.context import parse_step_params
from misuan.node.steps.preview import PlannedDisclosure
from misuan.node.steps.registry import STEPS

__all__ = [
    "CONSENT_STEP",
    "Decision",
    "JobPreview",
    "decide",
    "decision_for",
    "preview_job",
    "record_decision",
    "retire_decision",
    "template_hash",
]

CONSENT_STEP = "job/consent"
DecisionKind = Literal["approved", "refused", "auto"]


def template_hash(spec: JobSpec) -> str:
    """SHA-256 of the spec without its job id: what a standing approval covers."""
    doc = {
        "version": spec.version,
        "parties": [[p.name, p.role] for p in spec.parties],
        "steps": [[s.name, s.kind, list(s.parties), dict(s.params)] for s in spec.steps],
    }
    return hashlib.sha256(canonical_json(doc).encode("utf-8")).hexdigest()


@dataclasses.dataclass(frozen=True)
class JobPreview:
    """What one party will disclose and learn in a job, before it runs."""

    job_id: str
    party: str
    spec_hash: str
    template_hash: str
    parties: list[dict[str, Any]]  # name, role, address, trust: anchors' subjects and fingerprints
    steps: list[dict[str, Any]]  # name, kind, parties
    disclosures: list[PlannedDisclosure]

    @property
    def sends(self) -> list[PlannedDisclosure]:
        return [d for d in self.disclosures if d.discloser == self.party]

    @property
    def learns(self) -> list[PlannedDisclosure]:
        return [d for d in self.disclosures if d.recipient == self.party and d.discloser != self.party]

    def as_dict(self) -> dict[str, Any]:
        return dict(
            dataclasses.asdict(self), disclosures=[dataclasses.asdict(d) for d in self.disclosures],
            consent_hash=self.consent_hash,
        )

    @property
    def consent_hash(self) -> str:
        """SHA-256 of what the operator consents to: parties (addresses, anchors, pins), steps and every
        disclosure; not the job id, so that a standing approval binds the same content under new ids."""
        doc = {"parties": self.parties, "steps": self.steps, "disclosures": [dataclasses.asdict(d) for d in self.disclosures]}
        return hashlib.sha256(canonical_json(doc).encode("utf-8")).hexdigest()

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> JobPreview:
        fields = {k: doc[k] for k in ("job_id", "party", "spec_hash", "template_hash", "parties", "steps")}  # consent_hash is derived
        return cls(**fields, disclosures=[PlannedDisclosure(**d) for d in doc["disclosures"]])


def preview_job(spec: JobSpec, party: str, anchors: Mapping[str, TrustAnchors] | None = None) -> JobPreview:
    """Every catalogue entry of every step ``party`` takes part in, in which it sends or learns."""
    spec.party(party)
    planned: list[PlannedDisclosure] = []
    for step in spec.steps:
        if party not in step.parties:
            continue
        kind = STEPS[step.kind]
        if kind.preview is None:
            raise JobSpecError(f"step kind {step.kind!r} cannot say what it discloses; it cannot run under consent")
        for d in kind.preview(step, spec, parse_step_params(kind, step, spec)):
            if party in (d.discloser, d.recipient):  # a joint result ("all") only as its own receipt
                planned.append(d)
    parties = []
    for p in spec.parties:
        a = (anchors or {}).get(p.name)
        trust = [{"subject": c.subject.rfc4514_string(), "fingerprint": fingerprint(c)} for c in a.cas] if a else []
        parties.append({"name": p.name, "role": p.role, "address": p.address, "trust": trust,
                        "pins": sorted(a.pins) if a else []})
    steps = [{"name": s.name, "kind": s.kind, "parties": list(s.parties)} for s in spec.steps]
    return JobPreview(spec.job_id, party, spec.shared_hash(), template_hash(spec), parties, steps, planned)


# --- decisions -------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Decision:
    """An operator's signed decision on one job (or, standing, on a spec template)."""

    job_id: str
    spec_hash: str
    template_hash: str
    consent_hash: str  # JobPreview.consent_hash of the preview the operator saw
    decision: DecisionKind
    reason: str
    operator: str
    decided_at: str
    standing: bool
    signer: str = ""  # fingerprint of the node certificate whose key signed
    signature: str = ""  # hex DER ECDSA signature over payload()

    def payload(self) -> bytes:
        doc = dataclasses.asdict(self)
        doc.pop("signature")
        return canonical_json(doc).encode("utf-8")

    def covers(self, spec: JobSpec, preview: JobPreview) -> bool:
        """Whether this decision is about ``spec`` as ``preview`` shows it now (same anchors, same disclosures)."""
        if self.consent_hash != preview.consent_hash:
            return False
        if self.standing:
            return self.template_hash == template_hash(spec)
        return self.job_id == spec.job_id and self.spec_hash == spec.shared_hash()


def _paths(node: NodeConfig) -> tuple[Path, Path]:
    root = node.data_dir / "approvals"
    return root, root / "standing"


def decide(
    node: NodeConfig, spec: JobSpec, preview: JobPreview, decision: Literal["approved", "refused"], *,
    reason: str = "", operator: str | None = None, standing: bool = False,
) -> Decision:
    """Sign and store the operator's decision on ``spec`` as ``preview`` showed it; the node acts on it at its next poll."""
    if decision == "refused" and not reason.strip():
        raise ConfigError("a refusal needs a reason (--reason): the peers' operators read it")
    if decision == "refused" and standing:
        raise ConfigError("a standing decision can only approve; refuse each job on its own")
    unsigned = Decision(
        spec.job_id, spec.shared_hash(), template_hash(spec), preview.consent_hash, decision, reason.strip(),
        operator or _operator(),
        dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), standing, certificate_fingerprint(node.tls.cert),
    )
    signed = dataclasses.replace(unsigned, signature=sign_with_key(node.tls.key, unsigned.payload()))
    root, standing_dir = _paths(node)
    path = standing_dir / f"{signed.template_hash}.json" if standing else root / f"{spec.job_id}.json"
    write_json_atomic(path, dataclasses.asdict(signed))
    return signed


def _operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in containers without a passwd entry
        return "unknown operator"


def _read_decision(path: Path, node: NodeConfig) -> Decision:
    try:
        d = Decision(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"approval file {path} is unreadable: {exc}") from exc
    try:
        verify_with_certificate(node.tls.cert, d.payload(), d.signature, d.signer, f"approval file {path}")
    except AuthenticationError as exc:
        raise AuthenticationError(f"{exc} (this node's key): decide again with `misuan node approve/refuse`") from None
    return d


def decision_for(node: NodeConfig, spec: JobSpec, preview: JobPreview) -> Decision | None:
    """The decision that covers ``spec`` as ``preview`` shows it: its own, else a standing approval,
    else ``auto``, else None. Raises :class:`AuthenticationError` for a decision file this node's key
    did not sign (the caller treats the job as undecided)."""
    root, standing_dir = _paths(node)
    own = root / f"{spec.job_id}.json"
    if own.is_file():
        d = _read_decision(own, node)
        if not d.standing and d.covers(spec, preview):
            return d
    standing = standing_dir / f"{template_hash(spec)}.json"
    if standing.is_file():
        d = _read_decision(standing, node)
        if d.standing and d.decision == "approved" and d.covers(spec, preview):
            return d
    if node.approval == "auto":
        return Decision(spec.job_id, spec.shared_hash(), template_hash(spec), preview.consent_hash, "auto",
                        "approval = \"auto\" in node.toml", "node policy",
                        dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), False)
    return None


def retire_decision(node: NodeConfig, job_id: str) -> None:
    """Move a job's decision aside once acted on, so a resubmission of a refused job is asked about again."""
    root, _ = _paths(node)
    own = root / f"{job_id}.json"
    if own.is_file():
        done = root / "decided"
        done.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        os.replace(own, done / f"{job_id}-{stamp}.json")


def record_decision(ledger: Ledger, party: str, d: Decision) -> None:
    """The decision as one ledger row of the job (step ``job/consent``), signature included."""
    ledger.record(Disclosure(
        d.job_id, CONSENT_STEP, party, party, f"operator's decision on the job ({d.decision})", (), "plaintext",
        {k: v for k, v in dataclasses.asdict(d).items() if k != "job_id"},
    ))
