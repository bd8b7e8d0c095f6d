"""From a PD to a credit decision, as the bank's node answers one applicant.

The lending policy (:mod:`misuan.lending.policy`) decides approve or decline, the limit and the
risk-based rate within the product's caps; the requested amount is granted up to the limit; the
annualised-rate disclosure (:func:`misuan.lending.disclosure.loan_disclosure`) is computed on that
loan's schedule; a declined applicant gets the adverse-action notice with the policy's causes and
the model's principal reasons. The score is the PD on the usual points scale (``base_score`` at
``base_odds`` good:bad, ``pdo`` points to double the odds). A reason naming a protected attribute of
the product's jurisdiction (``lending/rules/protected_<jurisdiction>.toml``: sex, marital status,
age...) is never given: the next one takes its place.

``refer`` replaces approve/decline when the partner's contribution is missing (the partner did not
answer in time, or does not know the applicant): a person must look at the file.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Sequence
from typing import Any

from misuan.lending.caps import PolicyCaps, load_rules
from misuan.lending.disclosure import adverse_action_notice, loan_disclosure
from misuan.lending.fairness import load_policy, policy_jurisdictions
from misuan.lending.policy import REASONS, Applicant, PolicyParams, Reason, decide
from misuan.lending.product import LoanProduct

__all__ = ["DecisionEngine", "model_reason"]


@dataclasses.dataclass
class DecisionEngine:
    product: LoanProduct = dataclasses.field(default_factory=LoanProduct)
    policy: PolicyParams = dataclasses.field(default_factory=PolicyParams)
    base_score: float = 600.0
    base_odds: float = 50.0
    pdo: float = 20.0
    lender: str = ""

    def __post_init__(self) -> None:
        self._caps_on: dict[dt.date, PolicyCaps] = {}
        self._rules = load_rules(self.product.jurisdiction)
        # the jurisdiction's protected attributes: never a reason given to an applicant (Reg B 1002.9(b)(2))
        j = self.product.jurisdiction.lower()
        self._protected = load_policy(j) if j in policy_jurisdictions() else None

    def permitted(self, reasons: Sequence[tuple[str, str]]) -> list[Reason]:
        """The model's reasons ``(feature, party)`` that may be given: protected attributes left out."""
        return [model_reason(f, p) for f, p in reasons
                if self._protected is None or self._protected.attribute_of(f) is None]

    def caps(self, when: dt.date) -> PolicyCaps:
        if when not in self._caps_on:
            self._caps_on[when] = self.product.caps(self._rules, when)
        return self._caps_on[when]

    def score(self, pd: float) -> float:
        p = min(max(pd, 1e-12), 1 - 1e-12)
        factor = self.pdo / math.log(2)
        return self.base_score - factor * math.log(self.base_odds) + factor * math.log((1 - p) / p)

    def decide(self, pd: float, *, monthly_income: float, amount: float | None, reasons: Sequence[Reason],
               partner_missing: str | None, when: dt.date, disclose: bool = True) -> dict[str, Any]:
        """The API's answer for one applicant (JSON-able); without ``disclose`` no APR disclosure text
        (portfolio re-scoring: no loan is offered, and the rate's root finding is most of the cost)."""
        d = decide(Applicant(float(pd), float(monthly_income)), self.policy, self.caps(when))
        out: dict[str, Any] = {
            "pd": float(pd), "score": round(self.score(pd), 1), "reasons": [_reason(r) for r in reasons],
            "limit": d.limit, "rate": d.rate, "rate_cap": d.rate_cap,
        }
        if partner_missing is not None:
            out["decision"] = "refer"
            out["refer_because"] = partner_missing
            return out
        if not d.approved:
            notice = adverse_action_notice([*d.decline_causes, *reasons], lang="en", lender=self.lender or None, decided_on=when)
            out.update(decision="decline", adverse_action=[_reason(r) for r in notice.reasons], notice=notice.text)
            return out
        principal = min(float(amount), d.limit) if amount else d.limit
        if not disclose:
            out.update(decision="approve", amount=principal)
            return out
        disclosure = loan_disclosure(self.product.schedule(principal, d.rate, when), lang="en")
        out.update(decision="approve", amount=principal, annualised_rate=disclosure.headline_rate,
                   annualised_basis=disclosure.headline_basis, disclosure=disclosure.text)
        return out


def _reason(r: Reason) -> dict[str, str]:
    return {"code": r.code, "en": r.en, "zh": r.zh}


def model_reason(feature: str, party: str) -> Reason:
    """A reason code for a model feature (the partner's by name as the model knows it)."""
    known = REASONS.get(f"FEATURE_{feature}")
    if known is not None:
        return known
    return Reason(f"FEATURE_{feature}", f"{feature} in {party}'s data raised the estimated risk",
                  f"{party} 数据中的 {feature} 提高了风险评估")
