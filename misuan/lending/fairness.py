"""Fairness of credit decisions by protected group: the policy (what is protected, per jurisdiction)
and the metrics, from per-group counts alone.

Policies are data: ``misuan/lending/rules/protected_<jurisdiction>.toml`` (``protected_us.toml``
describes the schema): each protected attribute's column names, how its rows are grouped
(categories, or bands of an age), what to do when a model uses it as a feature (``refuse`` or
``warn``) and the source; and the thresholds of the findings.

Metrics per attribute (:func:`audit_groups`), with credit's "positive outcome" being approval:

- **approval-rate ratio** (four-fifths rule): the lowest group's approval rate over the highest's;
  below ``approval_ratio`` (0.8) is a finding of adverse impact;
- **equal opportunity**: the approval rate among customers who repaid (the true-positive rate of
  "creditworthy"), highest minus lowest group; above ``equal_opportunity_gap`` is a finding;
- **calibration by group**: each group's mean PD against its observed default rate; a gap above
  ``calibration_gap`` in any group is a finding (the model under- or over-states that group's risk).

The inputs are each group's row count and sums (approved, approved-and-repaid, repaid, defaulted,
PD): exactly what :mod:`misuan.protocols.group_sums` gives the bank when the partner holds the
attribute, or a local group-by when the bank does.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Literal

import numpy as np

from misuan.lending.errors import RuleFileError
from misuan.toml_files import read_toml

__all__ = [
    "AttributeAudit", "FairnessPolicy", "GroupCounts", "ProtectedAttribute", "audit_groups", "group_rows",
    "load_policy", "policy_jurisdictions", "pricing_inputs_check",
]

RULES_DIR = Path(__file__).resolve().parent / "rules"
_PREFIX = "protected_"


@dataclasses.dataclass(frozen=True)
class ProtectedAttribute:
    id: str
    names: tuple[str, ...]
    kind: Literal["categorical", "bands"]
    labels: dict[str, str]  # categorical: value (as text) -> label
    edges: tuple[float, ...]  # bands: cut points (a value below edges[0] is band 0)
    as_model_feature: Literal["refuse", "warn"]
    source: str


@dataclasses.dataclass(frozen=True)
class FairnessPolicy:
    jurisdiction: str
    source: str
    approval_ratio: float
    equal_opportunity_gap: float
    calibration_gap: float
    min_group_size: int
    attributes: tuple[ProtectedAttribute, ...]
    risk_factors: tuple[str, ...] = ()  # what a price may depend on

    def attribute_of(self, column: str) -> ProtectedAttribute | None:
        """The protected attribute a column is (by any of its names), or None."""
        return next((a for a in self.attributes if column in a.names), None)


def policy_jurisdictions() -> list[str]:
    return sorted(p.stem[len(_PREFIX):] for p in RULES_DIR.glob(f"{_PREFIX}*.toml"))


def load_policy(jurisdiction: str, path: Path | None = None) -> FairnessPolicy:
    """The policy of ``jurisdiction`` (``"us"``, ``"cn"``), or of the file ``path``; RuleFileError naming the field."""
    p = path or RULES_DIR / f"{_PREFIX}{jurisdiction.lower()}.toml"
    if not p.is_file():
        raise RuleFileError(f"no fairness policy {jurisdiction!r}; there are {policy_jurisdictions()}")
    doc = read_toml(p, error=RuleFileError)
    try:
        th = doc["thresholds"]
        attrs = tuple(_attribute(a, f"{p.name}: attribute[{i}]") for i, a in enumerate(doc["attribute"], start=1))
        policy = FairnessPolicy(str(doc["jurisdiction"]), str(doc["source"]), float(th["approval_ratio"]),
                                float(th["equal_opportunity_gap"]), float(th["calibration_gap"]),
                                int(th["min_group_size"]), attrs,
                                tuple(str(f) for f in doc.get("pricing", {}).get("risk_factors", [])))
    except (KeyError, TypeError, ValueError) as exc:
        raise RuleFileError(f"{p.name}: missing or malformed {exc}") from None
    if not 0 < policy.approval_ratio <= 1 or policy.min_group_size < 1:
        raise RuleFileError(f"{p.name}: thresholds.approval_ratio must be in (0, 1] and min_group_size at least 1")
    return policy


def _attribute(raw: dict[str, Any], where: str) -> ProtectedAttribute:
    kind, action = raw["kind"], raw["as_model_feature"]
    if kind not in ("categorical", "bands") or action not in ("refuse", "warn"):
        raise RuleFileError(f"{where}: kind must be categorical or bands, as_model_feature refuse or warn")
    edges = tuple(float(e) for e in raw.get("edges", []))
    if kind == "bands" and (not edges or any(b <= a for a, b in zip(edges, edges[1:], strict=False))):
        raise RuleFileError(f"{where}: bands need increasing edges")
    return ProtectedAttribute(str(raw["id"]), tuple(str(n) for n in raw["names"]), kind,
                              {str(k): str(v) for k, v in raw.get("labels", {}).items()}, edges, action, str(raw["source"]))


def group_rows(attr: ProtectedAttribute, values: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Each row's group index and the groups' labels; missing values form a group of their own."""
    v = np.asarray(values)
    if attr.kind == "bands":
        x = v.astype(np.float64)
        e = list(attr.edges)
        labels = [f"under {e[0]:g}"] + [f"{a:g} to under {b:g}" for a, b in zip(e, e[1:], strict=False)] + [f"{e[-1]:g} and over"]
        idx = np.searchsorted(np.asarray(e), x, side="right")
        missing = np.isnan(x)
    else:
        text = np.array([_as_text(t) for t in v.tolist()], dtype=object)
        missing = np.array([t == "" for t in text])
        cats = sorted({t for t in text.tolist() if t != ""}, key=lambda t: (len(t), t))
        labels = [attr.labels.get(c, c) for c in cats]
        if len(set(labels)) != len(labels):  # a raw value that reads like another's label: keep both apart
            labels = [f"{lab} ({c})" if labels.count(lab) > 1 else lab for lab, c in zip(labels, cats, strict=True)]
        pos = {c: i for i, c in enumerate(cats)}
        idx = np.array([pos.get(t, 0) for t in text.tolist()], dtype=np.int64)
    if missing.any():
        idx = np.where(missing, len(labels), idx)
        labels = [*labels, "missing"]
    return idx.astype(np.int64), labels


def _as_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclasses.dataclass(frozen=True)
class GroupCounts:
    """One group's row count and the sums the audit needs."""

    label: str
    rows: int
    approved: int
    approved_repaid: int
    repaid: int
    defaults: int
    pd_sum: float


@dataclasses.dataclass(frozen=True)
class AttributeAudit:
    attribute: str  # the column
    protected_as: str  # the policy's attribute id
    groups: list[dict[str, Any]]  # label, rows, approval rate, approval rate among repaid, mean PD, default rate
    approval_ratio: float
    equal_opportunity_gap: float
    calibration_gap: float
    findings: list[str]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _rate(a: float, b: float) -> float | None:
    return a / b if b else None


def audit_groups(column: str, attr: ProtectedAttribute, groups: list[GroupCounts], policy: FairnessPolicy) -> AttributeAudit:
    """The metrics and findings of one attribute's groups (see the module docstring)."""
    rows: list[dict[str, Any]] = []
    for g in groups:
        rows.append({"group": g.label, "rows": g.rows, "approval_rate": _rate(g.approved, g.rows),
                     "approval_rate_repaid": _rate(g.approved_repaid, g.repaid), "mean_pd": _rate(g.pd_sum, g.rows),
                     "default_rate": _rate(g.defaults, g.rows)})
    approval = [r["approval_rate"] for r in rows if r["approval_rate"] is not None]
    tpr = [r["approval_rate_repaid"] for r in rows if r["approval_rate_repaid"] is not None]
    ratio = min(approval) / max(approval) if approval and max(approval) > 0 else 1.0
    eo = max(tpr) - min(tpr) if tpr else 0.0
    cal = max((abs(r["mean_pd"] - r["default_rate"]) for r in rows if r["rows"]), default=0.0)
    findings = []
    if ratio < policy.approval_ratio:
        low = min(rows, key=lambda r: r["approval_rate"] if r["approval_rate"] is not None else 2.0)
        findings.append(f"{column}: approval-rate ratio {ratio:.2f} below {policy.approval_ratio:g} "
                        f"(four-fifths rule); lowest: {low['group']}")
    if eo > policy.equal_opportunity_gap:
        findings.append(f"{column}: approval rates among customers who repaid differ by {eo:.3f} "
                        f"(above {policy.equal_opportunity_gap:g})")
    if cal > policy.calibration_gap:
        findings.append(f"{column}: in some group the mean PD and the default rate differ by {cal:.3f} "
                        f"(above {policy.calibration_gap:g})")
    return AttributeAudit(column, attr.id, rows, ratio, eo, cal, findings)


def pricing_inputs_check(policy: FairnessPolicy) -> list[str]:
    """Problems with what the lending policy prices on: every field of the applicant record that
    :func:`misuan.lending.policy.decide` reads must be a declared risk factor and no protected
    attribute. Empty when the price depends only on the declared risk factors (by construction:
    ``decide`` sees nothing else)."""
    from misuan.lending.policy import Applicant

    inputs = [f.name for f in dataclasses.fields(Applicant)]
    problems = [f"the price reads {f!r}, which the {policy.jurisdiction} policy does not declare a risk factor"
                for f in inputs if f not in policy.risk_factors]
    problems += [f"the price reads {f!r}, the protected attribute {a.id!r}" for f in inputs
                 if (a := policy.attribute_of(f)) is not None]
    return problems
