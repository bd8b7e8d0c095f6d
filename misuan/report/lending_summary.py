"""The ``lending`` part of a report summary, made from the lending package's results.

:func:`lending_summary` applies the limit and pricing policy (:mod:`misuan.lending.policy`) to each
hold-out customer's PD from the joint model, within the caps of the product's jurisdiction on the
contract date; checks the product (:mod:`misuan.lending.product`) at the most any approved customer
could be charged: the largest limit offered at the highest rate offered, fees included; picks one
approved customer's loan for the borrower disclosure and one declined customer for the
adverse-action notice (the median PD among the declined whose reasons are available); and runs the marketing-copy checker on the product's two sample promotions
(:data:`PROMOTIONS`: one compliant, one breaking several rules). The result is a plain dict of the
shape of :class:`misuan.report.lending_schema.Lending`. The demo and the sample report use it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from misuan.lending.caps import PolicyCaps, RuleSet, load_rules
from misuan.lending.copy_check import Finding, ProductTerms, check_copy
from misuan.lending.disclosure import MAX_REASONS
from misuan.lending.policy import Applicant, Decision, PolicyParams, Reason, decide
from misuan.lending.product import LoanProduct, ProductCheck, check_product
from misuan.params import ParamError, check_params, param

__all__ = ["PROMOTIONS", "LendingSetup", "NoticeReasons", "lending_summary"]

# The product's sample promotions ({name}, {term}, {low}, {high}, {fee} filled in): the first states the
# annualised rate range (fees included) and a risk warning; the second quotes a daily rate without the
# annualised one, claims zero interest on a product that charges interest and a fee, targets students,
# promises approval and invites over-borrowing, without a risk warning.
PROMOTIONS: tuple[tuple[str, str], ...] = (
    ("compliant", "{name}：{term}期等额本息，年化利率（单利）{low}–{high}，已含借款金额{fee}的一次性服务费，"
                  "具体以审批结果为准。贷款有风险，借款需谨慎，请根据个人能力合理借款。"),
    ("violating", "{name}：日息低至万分之二，首月0利息！大学生也能借，秒批必下款，想借就借！"),
)

NoticeReasons = Callable[[Sequence[int]], Sequence[tuple[Sequence[Reason], str]]]
"""For the declined customers' indices, per customer: the principal reasons, most important first, and
where they come from (or, with no reasons, why none is available)."""


@dataclasses.dataclass(frozen=True)
class LendingSetup:
    """What the policy is applied with: the product, the policy and each applicant's monthly income."""

    product: LoanProduct = param(LoanProduct(), "the loan product (term, fee, jurisdiction, lender type)")
    policy: PolicyParams = param(PolicyParams(), "the limit and pricing policy")
    monthly_income: float = param(10_000.0, "monthly income given to every applicant whose data has none", gt=0)

    def __post_init__(self) -> None:
        check_params(self, "lending setup")
        if self.policy.term_months != self.product.term_months:  # the policy sizes limits for the product's term
            raise ParamError("policy.term_months", f"must be the product's term_months ({self.product.term_months})",
                             "lending setup")


def lending_summary(pds: Sequence[float], setup: LendingSetup, contract_date: dt.date, *,
                    notice_reasons: NoticeReasons, model: str = "joint", lender_name: str = "",
                    assumptions: Sequence[str] = ()) -> dict[str, Any]:
    """The ``lending`` part of a summary for the customers with PDs ``pds`` (``evaluation.scores[model]``)."""
    rules = load_rules(setup.product.jurisdiction)
    caps = setup.product.caps(rules, contract_date)
    decisions = [decide(Applicant(float(pd), setup.monthly_income), setup.policy, caps) for pd in pds]
    approved = [i for i, d in enumerate(decisions) if d.approved]
    declined = [i for i, d in enumerate(decisions) if not d.approved]
    worst, basis = _worst_case(decisions, approved)
    check = check_product(setup.product, worst[0], worst[1], contract_date, rules)
    out: dict[str, Any] = {
        "decisions": _decisions(model, decisions, setup.policy, caps),
        "product": _product(setup.product, check, contract_date, basis),
        "copy_checks": _copy_checks(setup.product, decisions, approved, contract_date, rules),
        "assumptions": list(assumptions),
    }
    if approved:
        out["example_loan"] = _example_loan(setup.product, decisions, approved, contract_date)
    if declined:
        out["notice"] = _notice(pds, decisions, declined, notice_reasons, lender_name, contract_date)
    return out


def _notice(pds: Sequence[float], decisions: Sequence[Decision], declined: Sequence[int], notice_reasons: NoticeReasons,
            lender_name: str, when: dt.date) -> dict[str, Any]:
    """The notice of the declined customer with the median PD among those ``notice_reasons`` explains (among
    all the declined when it explains none), and how many of the declined it explains."""
    by_pd = sorted(declined, key=lambda k: (float(pds[k]), k))
    found = dict(zip(by_pd, notice_reasons(by_pd), strict=True))
    explained = [i for i in by_pd if found[i][0]]
    pool = explained or by_pd
    i = pool[len(pool) // 2]
    reasons, source = found[i]
    distinct: dict[str, Reason] = {}
    for r in reasons:
        distinct.setdefault(r.code, r)
    return {
        "applicant": i, "reasons": [_reason(r) for r in list(distinct.values())[:MAX_REASONS]],
        "reasons_from": source, "policy_reasons": [r.code for r in decisions[i].decline_causes],
        "explained": len(explained), "lender": lender_name, "decided_on": when.isoformat(),
    }


def _reason(r: Reason) -> dict[str, str]:
    return {"code": r.code, "en": r.en, "zh": r.zh}


def _decisions(model: str, decisions: Sequence[Decision], policy: PolicyParams, caps: PolicyCaps) -> dict[str, Any]:
    causes = Counter(r.code for d in decisions for r in d.decline_causes)
    return {
        "model": model,
        "approved": [d.approved for d in decisions],
        "limit": [d.limit for d in decisions],
        "rate": [d.rate for d in decisions],
        "rate_cap": decisions[0].rate_cap, "amount_cap": decisions[0].amount_cap,  # the same for every customer
        "policy": dataclasses.asdict(policy),
        "cap_rules": list(caps.rule_ids),
        "decline_reasons": dict(causes.most_common()),
    }


def _worst_case(decisions: Sequence[Decision], approved: Sequence[int]) -> tuple[tuple[float, float], str]:
    """(principal, nominal rate) of the loan to check the caps on, and which loan that is in words."""
    if not approved:
        d = decisions[0]
        return (d.amount_cap, d.rate_cap), "no customer was approved: a loan at the policy's amount and rate caps"
    limit = max(decisions[i].limit for i in approved)
    rate = max(decisions[i].rate for i in approved)
    return (limit, rate), ("the largest limit offered at the highest rate offered: the most any approved "
                           "customer could borrow and be charged")


def _product(product: LoanProduct, check: ProductCheck, when: dt.date, basis: str) -> dict[str, Any]:
    caps = [{k: v for k, v in c.as_dict().items() if k != "passed"} for c in check.caps.checks]
    return {
        "name": product.name, "term_months": product.term_months, "upfront_fee_rate": product.upfront_fee_rate,
        "currency": product.currency, "jurisdiction": product.jurisdiction, "lender": product.lender,
        "contract_date": when.isoformat(), "principal": check.schedule.principal,
        "annual_rate": check.schedule.annual_rate or 0.0,
        "annualised_simple": check.rate.simple, "annualised_compound": check.rate.compound,
        "caps": caps, "not_checked": [{"rule_id": r, "reason": why} for r, why in check.caps.not_checked],
        "basis": basis,
    }


def _example_loan(product: LoanProduct, decisions: Sequence[Decision], approved: Sequence[int],
                  start: dt.date) -> dict[str, Any]:
    """The loan of the whole limit of the approved customer with the median limit."""
    i = sorted(approved, key=lambda k: (decisions[k].limit, k))[len(approved) // 2]
    d = decisions[i]
    return {"applicant": i, "principal": d.limit, "annual_rate": d.rate, "term_months": product.term_months,
            "upfront_fee": product.upfront_fee(d.limit), "start": start.isoformat(), "currency": product.currency}


def _copy_checks(product: LoanProduct, decisions: Sequence[Decision], approved: Sequence[int], when: dt.date,
                 rules: RuleSet) -> list[dict[str, Any]]:
    """The sample promotions, the first quoting the true annualised rates (fees included) of the offers."""
    rates = sorted({decisions[i].rate for i in approved}) or [decisions[0].rate_cap]
    # the annualised rate of a rate hardly depends on the principal (cents of rounding): one of 10,000
    low, high = (check_product(product, 10_000.0, r, when, rules).rate.simple for r in (rates[0], rates[-1]))
    terms = ProductTerms(name=product.name, interest_rate=rates[0], fees={"upfront_fee": product.upfront_fee_rate})
    said = (f"{product.name} charges interest ({rates[0]:.2%} to {rates[-1]:.2%} a year, nominal) and an "
            f"upfront fee of {product.upfront_fee_rate * 100:g}% of the principal")
    out = []
    for label, template in PROMOTIONS:
        text = template.format(name=product.name, term=product.term_months, low=f"{low:.2%}", high=f"{high:.2%}",
                               fee=f"{product.upfront_fee_rate * 100:g}%")
        out.append({"label": label, "text": text, "terms": said,
                    "findings": [_finding(f) for f in check_copy(text, terms)]})
    return out


def _finding(f: Finding) -> dict[str, Any]:
    return {"rule_id": f.rule_id, "severity": f.severity, "title": f.title, "start": f.start, "end": f.end,
            "text": f.text, "explanation": f.explanation, "detail": f.detail, "sources": list(f.sources)}
