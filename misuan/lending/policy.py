"""A documented, configurable credit-limit and pricing policy, and periodic limit reviews.

From the joint model's probability of default (PD), the applicant's income, debt-to-income and existing
debt, :func:`decide` gives an approve/decline, a credit limit and a risk-based annual rate; the
parameters are declared once in :class:`PolicyParams` (``misuan.params``). The policy, step by step:

1. **Price.** The rate that covers expected loss, ``required = (funding + operating + margin + PD x LGD) /
   (1 - PD x LGD)`` (a loan is repaid with probability ``1 - PD`` and loses ``LGD`` otherwise), raised to
   ``rate_floor`` and capped at the lower of ``rate_cap`` and the binding rule cap
   (:func:`misuan.lending.caps.binding_caps`). A ``required`` rate above the cap is a decline: the
   price may not rise to meet the risk.
2. **Capacity.** The affordable payment ``max_dti x income - existing debt payments``; the limit an
   equal-instalment loan over ``term_months`` at the offered rate could repay with it; and
   ``income_multiple x monthly income - existing debt``.
3. **Risk.** The smallest of those, of ``max_limit`` and of the rule's amount cap, times ``1 -
   risk_haircut x PD / max_pd``, rounded down to ``limit_unit``. PD above ``max_pd`` or a limit under
   ``min_limit`` is a decline.

Every step can only lower the limit and raise the price as PD rises, so a higher PD never gives a higher
limit or a lower price, and neither cap is ever exceeded (property tests in tests/lending). The nominal
rate of an equal-instalment loan without fees equals its PBoC simple annualised rate, which is what the
caps compare. :func:`review_limit` re-runs the policy with a new PD and moves an existing limit toward
the new target by at most ``max_step_up`` / ``max_step_down`` per review, with the reasons.
"""

from __future__ import annotations

import dataclasses
import math

from misuan.lending.caps import PolicyCaps
from misuan.lending.errors import LoanError
from misuan.params import ParamError, check_params, param

__all__ = ["REASONS", "Applicant", "Decision", "LimitReview", "PolicyParams", "Reason", "decide", "review_limit"]


@dataclasses.dataclass(frozen=True)
class Reason:
    """A reason code with its text in English and Chinese (an adverse-action notice lists them)."""

    code: str
    en: str
    zh: str


REASONS: dict[str, Reason] = {r.code: r for r in (
    Reason("PD_HIGH", "Estimated risk of default is too high", "评估的违约风险过高"),
    Reason("PRICE_ABOVE_CAP", "The price the estimated risk requires exceeds the highest permitted rate",
           "与风险相符的定价超过允许的最高利率"),
    Reason("DTI_HIGH", "Existing debt payments are too high relative to income", "现有债务还款额相对收入过高"),
    Reason("DEBT_HIGH", "Existing debt is too high relative to income", "现有负债相对收入过高"),
    Reason("INCOME_LOW", "Income is insufficient for the amount of credit", "收入不足以支持所需的授信额度"),
    Reason("RISK_REDUCED", "Credit limit reduced for the estimated risk of default", "因评估的违约风险下调额度"),
    Reason("LIMIT_BELOW_MINIMUM", "The credit limit that could be offered is below the product minimum",
           "可授信额度低于产品最低额度"),
    Reason("AMOUNT_CAP", "Credit limit held at the regulatory or product maximum", "额度受监管或产品上限限制"),
    Reason("PD_ROSE", "Estimated risk of default has risen since the last review", "评估的违约风险较上次评估上升"),
    Reason("PD_FELL", "Estimated risk of default has fallen since the last review", "评估的违约风险较上次评估下降"),
    Reason("STEP_UP_BOUNDED", "The increase is limited to the largest step allowed per review", "单次上调幅度受限"),
    Reason("STEP_DOWN_BOUNDED", "The decrease is limited to the largest step allowed per review", "单次下调幅度受限"),
)}


@dataclasses.dataclass(frozen=True)
class PolicyParams:
    """The limit and pricing policy's parameters (rates are annual fractions: 0.24 for 24 %)."""

    funding_cost: float = param(0.03, "annual cost of the funds lent", ge=0, le=1)
    operating_cost: float = param(0.02, "annual cost of servicing, per unit lent", ge=0, le=1)
    margin: float = param(0.02, "annual target margin", ge=0, le=1)
    lgd: float = param(0.8, "loss given default: the share of the exposure lost", gt=0, le=1)
    rate_floor: float = param(0.0, "lowest annual rate offered", ge=0, le=1)
    rate_cap: float = param(0.24, "highest annual rate offered (the rule caps bind as well)", gt=0, le=1)
    max_pd: float = param(0.15, "decline when the one-year PD is above this", gt=0, lt=1)
    max_dti: float = param(0.5, "all monthly debt payments at most this share of monthly income", gt=0, le=1)
    income_multiple: float = param(6.0, "existing debt plus the limit at most this many months of income", gt=0, le=120)
    term_months: int = param(12, "term the limit is sized for, as an equal-instalment loan", ge=1, le=360)
    risk_haircut: float = param(0.5, "share of the limit taken off as PD goes from 0 to max_pd", ge=0, le=1)
    min_limit: float = param(1000.0, "a smaller limit is not offered: the application is declined", ge=0)
    max_limit: float = param(200000.0, "largest limit offered (the rule caps bind as well)", gt=0)
    limit_unit: float = param(100.0, "limits are rounded down to a multiple of this", gt=0)
    max_step_up: float = param(0.2, "a review raises a limit by at most this share of it", ge=0, le=10)
    max_step_down: float = param(0.5, "a review lowers a limit by at most this share of it", ge=0, le=1)

    def __post_init__(self) -> None:
        check_params(self, "lending policy")
        if self.min_limit > self.max_limit:
            raise ParamError("min_limit", f"must be at most max_limit ({self.max_limit:g})", "lending policy")
        if self.rate_floor > self.rate_cap:
            raise ParamError("rate_floor", f"must be at most rate_cap ({self.rate_cap:g})", "lending policy")


@dataclasses.dataclass(frozen=True)
class Applicant:
    """What the policy knows of a borrower: the joint model's one-year PD and monthly figures."""

    pd: float
    monthly_income: float
    monthly_debt_payments: float = 0.0
    existing_debt: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.pd) and 0 <= self.pd <= 1):
            raise LoanError(f"PD must be a probability from 0 to 1, not {self.pd!r}")
        for name in ("monthly_income", "monthly_debt_payments", "existing_debt"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v >= 0):
                raise LoanError(f"{name.replace('_', ' ')} must be zero or positive, not {v!r}")

    @property
    def debt_to_income(self) -> float:
        return math.inf if self.monthly_income == 0 else self.monthly_debt_payments / self.monthly_income


@dataclasses.dataclass(frozen=True)
class Decision:
    """The policy's answer: ``limit`` 0 when declined; ``rate`` the capped offer, ``required_rate`` the
    uncapped risk price; ``reasons`` most important first."""

    approved: bool
    limit: float
    rate: float
    required_rate: float
    rate_cap: float
    amount_cap: float
    reasons: tuple[Reason, ...]

    def as_dict(self) -> dict[str, object]:
        return {"approved": self.approved, "limit": self.limit, "rate": self.rate,
                "required_rate": self.required_rate, "rate_cap": self.rate_cap, "amount_cap": self.amount_cap,
                "reasons": [r.code for r in self.reasons]}

    @property
    def decline_causes(self) -> tuple[Reason, ...]:
        """The reasons that made the policy decline (empty when approved): a PD above ``max_pd``, a risk
        price above the cap, or a limit under ``min_limit`` with the capacity bound that made it small.

        ``reasons`` also names the capacity bound that sized the limit (``DTI_HIGH``, ``INCOME_LOW``, ...)
        on every application; on a decline for risk that bound did not cause the decline, so a notice
        must not cite it.
        """
        if self.approved:
            return ()
        codes = {r.code for r in self.reasons}
        causes = {"PD_HIGH", "PRICE_ABOVE_CAP"}
        if "LIMIT_BELOW_MINIMUM" in codes:
            causes |= {"LIMIT_BELOW_MINIMUM", "DTI_HIGH", "DEBT_HIGH", "INCOME_LOW"}
        return tuple(r for r in self.reasons if r.code in causes)


def _caps(params: PolicyParams, caps: PolicyCaps | None) -> tuple[float, float]:
    rate_cap = min(params.rate_cap, caps.rate_cap if caps and caps.rate_cap is not None else math.inf)
    amount_cap = min(params.max_limit, caps.amount_cap if caps and caps.amount_cap is not None else math.inf)
    return rate_cap, amount_cap


def _price(pd: float, params: PolicyParams) -> float:
    loss = pd * params.lgd
    if loss >= 1:
        return math.inf
    return max(params.rate_floor, (params.funding_cost + params.operating_cost + params.margin + loss) / (1 - loss))


def _floor_unit(x: float, unit: float) -> float:
    return math.floor(x / unit + 1e-9) * unit if math.isfinite(x) else x


def _capacity(a: Applicant, rate: float, params: PolicyParams) -> tuple[float, float]:
    """(by payment, by income): what the affordable payment repays over the term, and the income multiple."""
    afford = max(0.0, params.max_dti * a.monthly_income - a.monthly_debt_payments)
    r = rate / 12
    n = params.term_months
    annuity = float(n) if r == 0 else (1 - (1 + r) ** -n) / r
    return afford * annuity, max(0.0, params.income_multiple * a.monthly_income - a.existing_debt)


def decide(applicant: Applicant, params: PolicyParams | None = None, caps: PolicyCaps | None = None) -> Decision:
    """Approve or decline ``applicant``, with a credit limit and a risk-based annual rate within the caps."""
    p = params or PolicyParams()
    rate_cap, amount_cap = _caps(p, caps)
    required = _price(applicant.pd, p)
    rate = min(required, rate_cap)
    by_payment, by_income = _capacity(applicant, rate, p)
    haircut = 1 - p.risk_haircut * min(applicant.pd / p.max_pd, 1.0)
    bounds = {"DTI_HIGH": by_payment, "DEBT_HIGH" if applicant.existing_debt > 0 else "INCOME_LOW": by_income,
              "AMOUNT_CAP": amount_cap}
    binding = min(bounds.values())
    limit = _floor_unit(binding * haircut, p.limit_unit)
    approved = applicant.pd <= p.max_pd and required <= rate_cap and limit >= p.min_limit
    reasons = [code for code, hit in (("PD_HIGH", applicant.pd > p.max_pd), ("PRICE_ABOVE_CAP", required > rate_cap)) if hit]
    reasons += [k for k, v in bounds.items() if k != "AMOUNT_CAP" and v <= binding * (1 + 1e-9)]
    if limit < p.min_limit:
        reasons.append("LIMIT_BELOW_MINIMUM")
    if approved and haircut < 1:
        reasons.append("RISK_REDUCED")
    if approved and amount_cap <= binding:
        reasons.append("AMOUNT_CAP")
    if not approved:
        limit = 0.0
    return Decision(approved, limit, rate, required, rate_cap, amount_cap, tuple(REASONS[r] for r in dict.fromkeys(reasons)))


@dataclasses.dataclass(frozen=True)
class LimitReview:
    """A periodic review: the limit before and after, the policy's target, the rate and the reasons."""

    old_limit: float
    target_limit: float
    new_limit: float
    rate: float
    reasons: tuple[Reason, ...]

    @property
    def direction(self) -> str:
        return "up" if self.new_limit > self.old_limit else "down" if self.new_limit < self.old_limit else "same"

    def as_dict(self) -> dict[str, object]:
        return {"old_limit": self.old_limit, "target_limit": self.target_limit, "new_limit": self.new_limit,
                "direction": self.direction, "rate": self.rate, "reasons": [r.code for r in self.reasons]}


def review_limit(current_limit: float, applicant: Applicant, params: PolicyParams | None = None,
                 caps: PolicyCaps | None = None, *, previous_pd: float | None = None) -> LimitReview:
    """Move ``current_limit`` toward the policy's limit for the applicant's new PD, by at most
    ``max_step_up`` / ``max_step_down`` of it, never above the caps (a lowered cap applies at once)."""
    if not (math.isfinite(current_limit) and current_limit >= 0):
        raise LoanError(f"the current limit must be zero or positive, not {current_limit!r}")
    p = params or PolicyParams()
    decision = decide(applicant, p, caps)
    unit = p.limit_unit
    low = min(current_limit, math.ceil(current_limit * (1 - p.max_step_down) / unit - 1e-9) * unit)
    high = max(current_limit, _floor_unit(current_limit * (1 + p.max_step_up), unit))
    new = min(max(decision.limit, low), high, decision.amount_cap)
    reasons: list[str] = []
    if previous_pd is not None and applicant.pd != previous_pd:
        reasons.append("PD_ROSE" if applicant.pd > previous_pd else "PD_FELL")
    reasons += [r.code for r in decision.reasons]
    if decision.limit > high and new == high:
        reasons.append("STEP_UP_BOUNDED")
    if decision.limit < low and new == low:
        reasons.append("STEP_DOWN_BOUNDED")
    if new < min(max(decision.limit, low), high):
        reasons.append("AMOUNT_CAP")
    return LimitReview(current_limit, decision.limit, new, decision.rate, tuple(REASONS[r] for r in dict.fromkeys(reasons)))
