"""The ``lending`` part of a report summary: credit decisions from the joint model's PDs, and the product's compliance.

Dataclasses parsed by :meth:`misuan.report.schema.Summary.from_dict` like the rest of the summary (and
re-exported by :mod:`misuan.report.schema`), and :func:`check_lending`, the checks across their fields:
a :class:`~misuan.errors.DataError` names the path of the offending value
(``summary.lending.decisions.limit[17]``). What the lending package computes is recorded here; the
report derives the rest (bands by PD, the borrower disclosure and the notice, through
:mod:`misuan.lending`). :mod:`misuan.report.lending_summary` builds this part from the lending
package's results.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Literal

from misuan.errors import DataError
from misuan.lending.disclosure import MAX_REASONS
from misuan.lending.policy import REASONS

__all__ = [
    "CapResult",
    "CopyCheck",
    "CopyFinding",
    "DeclineNotice",
    "ExampleLoan",
    "Lending",
    "LendingDecisions",
    "LendingProduct",
    "NotChecked",
    "NoticeReason",
    "check_lending",
]

Scalar = str | int | float | bool | None


@dataclasses.dataclass(frozen=True)
class LendingDecisions:
    """The lending policy (:mod:`misuan.lending.policy`) applied to the PD of each hold-out customer,
    ``evaluation.scores[model]``; the lists run parallel to ``evaluation.y_true``."""

    model: str  # the key in evaluation.scores whose PDs the policy used, e.g. "joint"
    approved: list[bool]
    limit: list[float]  # credit limit; 0 when declined
    rate: list[float]  # risk-based nominal annual rate (0.12 for 12 %); on a decline the capped risk price
    rate_cap: float  # the rate cap the policy applied: its own rate_cap or the tightest rule's, the lower
    amount_cap: float  # likewise for the limit
    policy: dict[str, Scalar] = dataclasses.field(default_factory=dict)  # PolicyParams, name -> value
    cap_rules: list[str] = dataclasses.field(default_factory=list)  # ids of the rules that set the caps
    # reason code (misuan.lending.policy.REASONS) -> number of declines it caused
    decline_reasons: dict[str, int] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class CapResult:
    """One rule of a caps check: ``misuan.lending.caps.CapCheck.as_dict()`` without ``passed``."""

    rule_id: str
    title: str
    status: Literal["pass", "fail", "upcoming-pass", "upcoming-fail"]
    figure_name: str  # annualised_rate, amount, ...
    figure: float
    check: Literal["max", "min"]
    limit: float
    limit_text: str  # how the limit was made, e.g. "4 x one-year LPR 3.00% (from 2025-05-20) = 12.00%"
    source: str
    effective: str  # ISO date
    note: str = ""


@dataclasses.dataclass(frozen=True)
class NotChecked:
    """A rule that binds the lender but could not be checked, and why."""

    rule_id: str
    reason: str


@dataclasses.dataclass(frozen=True)
class LendingProduct:
    """The loan product, and one loan of it (``basis`` says which) checked against the caps."""

    name: str
    term_months: int  # monthly equal instalments
    upfront_fee_rate: float  # fee deducted from the proceeds, share of the principal
    currency: str
    jurisdiction: str  # code of the caps rule set, e.g. "CN"
    lender: str  # lender type the caps bind, e.g. "bank_internet"
    contract_date: str  # ISO date the caps were checked on
    principal: float  # of the loan checked
    annual_rate: float  # its nominal rate
    annualised_simple: float  # its PBoC [2021] No. 3 annualised rate, fees included, simple (k r)
    annualised_compound: float  # and compound ((1 + r)^k - 1)
    caps: list[CapResult]
    not_checked: list[NotChecked] = dataclasses.field(default_factory=list)
    basis: str = ""  # in words, e.g. "the largest limit at the highest rate offered"
    repayment: Literal["equal-instalment"] = "equal-instalment"


@dataclasses.dataclass(frozen=True)
class ExampleLoan:
    """One approved customer's loan, for the borrower disclosure (built here by misuan.lending)."""

    applicant: int  # index into evaluation.y_true
    principal: float
    annual_rate: float  # nominal
    term_months: int
    upfront_fee: float
    start: str  # ISO date
    currency: str = "CNY"


@dataclasses.dataclass(frozen=True)
class NoticeReason:
    code: str
    en: str
    zh: str


@dataclasses.dataclass(frozen=True)
class DeclineNotice:
    """One declined customer's adverse-action notice: at most four principal reasons, most important first."""

    applicant: int  # index into evaluation.y_true
    reasons: list[NoticeReason]  # empty: no reason is available, and reasons_from says why
    reasons_from: str  # where the reasons come from (or why there are none)
    policy_reasons: list[str] = dataclasses.field(default_factory=list)  # codes of what made the policy decline
    explained: int | None = None  # declined customers whose reasons are available; the example is one of them
    lender: str = ""
    decided_on: str = ""  # ISO date


@dataclasses.dataclass(frozen=True)
class CopyFinding:
    """One finding of the marketing-copy checker: ``text == copy[start:end]``."""

    rule_id: str
    severity: Literal["error", "warning"]
    title: str
    start: int
    end: int
    text: str
    explanation: str = ""
    detail: str = ""
    sources: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class CopyCheck:
    """A promotion text of the product and what the checker found in it."""

    label: str  # e.g. "compliant", "violating"
    text: str
    findings: list[CopyFinding]
    terms: str = ""  # the product terms the claims were checked against, in words


@dataclasses.dataclass(frozen=True)
class Lending:
    """The credit decisions made from the joint model's PDs, and the compliance of the product."""

    decisions: LendingDecisions
    product: LendingProduct
    example_loan: ExampleLoan | None = None
    notice: DeclineNotice | None = None
    copy_checks: list[CopyCheck] = dataclasses.field(default_factory=list)
    assumptions: list[str] = dataclasses.field(default_factory=list)  # what the policy was given, in words


def check_lending(lending: Lending, n_customers: int, models: Sequence[str]) -> None:
    """Checks of ``summary.lending`` against the hold-out of ``n_customers`` scored by ``models``:
    decisions parallel to it and within their caps, loans that can be, example customers who were
    approved (the loan) and declined (the notice), copy findings that quote their spans."""
    d = lending.decisions
    _check_decisions(d, n_customers, models)
    p = lending.product
    path = "summary.lending.product"
    _check_loan(path, p.principal, p.annual_rate, p.term_months, p.upfront_fee_rate * p.principal)
    if not 0 <= p.upfront_fee_rate < 1:
        raise _fail(f"{path}.upfront_fee_rate", f"must be from 0 to below 1, not {p.upfront_fee_rate!r}")
    _check_date(f"{path}.contract_date", p.contract_date)
    loan = lending.example_loan
    if loan is not None:
        path = "summary.lending.example_loan"
        _check_applicant(f"{path}.applicant", loan.applicant, d, approved=True)
        _check_loan(path, loan.principal, loan.annual_rate, loan.term_months, loan.upfront_fee)
        _check_date(f"{path}.start", loan.start)
        if loan.principal > d.limit[loan.applicant] + 0.005:
            raise _fail(f"{path}.principal", f"is {loan.principal:,.2f}, above the applicant's limit "
                        f"{d.limit[loan.applicant]:,.2f}")
    notice = lending.notice
    if notice is not None:
        _check_applicant("summary.lending.notice.applicant", notice.applicant, d, approved=False)
        n_declined = len(d.approved) - sum(d.approved)
        if notice.explained is not None and not 0 <= notice.explained <= n_declined:
            raise _fail("summary.lending.notice.explained", f"is {notice.explained}, not from 0 to the {n_declined} declined")
        unknown = sorted(set(notice.policy_reasons) - set(REASONS))
        if unknown:
            raise _fail("summary.lending.notice.policy_reasons", f"has unknown reason codes {unknown}")
        codes = [r.code for r in notice.reasons]
        if len(codes) > MAX_REASONS or len(set(codes)) != len(codes):
            raise _fail("summary.lending.notice.reasons", f"must be at most {MAX_REASONS} distinct reasons "
                        f"(12 CFR 1002.9(b)(2)), not {codes}")
    for i, c in enumerate(lending.copy_checks):
        for j, f in enumerate(c.findings):
            where = f"summary.lending.copy_checks[{i}].findings[{j}]"
            if not 0 <= f.start <= f.end <= len(c.text):
                raise _fail(where, f"spans [{f.start}, {f.end}), outside the text of {len(c.text)} characters")
            if c.text[f.start:f.end] != f.text:
                raise _fail(f"{where}.text", f"is {f.text!r:.60}, not the text it spans ({c.text[f.start:f.end]!r:.60})")


def _check_decisions(d: LendingDecisions, n: int, models: Sequence[str]) -> None:
    path = "summary.lending.decisions"
    if d.model not in models:
        raise _fail(f"{path}.model", f"is {d.model!r:.60}, not one of the evaluated models {sorted(models)}")
    for key in ("approved", "limit", "rate"):
        got = len(getattr(d, key))
        if got != n:
            raise _fail(f"{path}.{key}", f"has {got} values for {n} labels in summary.evaluation.y_true")
    for key in ("rate_cap", "amount_cap"):
        if getattr(d, key) <= 0:
            raise _fail(f"{path}.{key}", f"must be positive, not {getattr(d, key)!r}")
    for i, (approved, limit, rate) in enumerate(zip(d.approved, d.limit, d.rate, strict=True)):
        problem = _decision_problem(approved, limit, rate, d)
        if problem is not None:
            raise _fail(f"{path}.{problem[0]}[{i}]", problem[1])
    unknown = sorted(set(d.decline_reasons) - set(REASONS))
    if unknown:
        raise _fail(f"{path}.decline_reasons", f"has unknown reason codes {unknown}; known: {sorted(REASONS)}")
    negative = sorted(k for k, v in d.decline_reasons.items() if v < 0)
    if negative:
        raise _fail(f"{path}.decline_reasons[{negative[0]!r}]", "must not be negative")


def _decision_problem(approved: bool, limit: float, rate: float, d: LendingDecisions) -> tuple[str, str] | None:
    """(field, problem) of one customer's decision, or None: a policy never exceeds its caps."""
    if rate < 0 or limit < 0:
        return ("rate", f"is {rate!r}: negative") if rate < 0 else ("limit", f"is {limit!r}: negative")
    if not approved:
        return None if limit == 0 else ("limit", f"is {limit:,.2f} for a declined applicant (must be 0)")
    if limit == 0:
        return "limit", "is 0 for an approved applicant"
    if limit > d.amount_cap * (1 + 1e-9):
        return "limit", f"is {limit:,.2f}, above the amount cap {d.amount_cap:,.2f}"
    if rate > d.rate_cap + 1e-12:
        return "rate", f"is {rate:.6g}, above the rate cap {d.rate_cap:.6g}"
    return None


def _check_applicant(path: str, index: int, d: LendingDecisions, *, approved: bool) -> None:
    if not 0 <= index < len(d.approved):
        raise _fail(path, f"is {index}, not an index of the {len(d.approved)} hold-out customers")
    if d.approved[index] != approved:
        raise _fail(path, f"is {index}, a customer the policy {'declined' if approved else 'approved'}")


def _check_loan(path: str, principal: float, annual_rate: float, term_months: int, upfront_fee: float) -> None:
    """The terms of a loan the lending package can build (so rendering cannot fail on them)."""
    if principal <= 0:
        raise _fail(f"{path}.principal", f"must be positive, not {principal!r}")
    if not 0 <= annual_rate <= 1:
        raise _fail(f"{path}.annual_rate", f"must be a fraction from 0 to 1 (0.12 for 12 %), not {annual_rate!r}")
    if not 1 <= term_months <= 360:
        raise _fail(f"{path}.term_months", f"must be from 1 to 360, not {term_months!r}")
    if not 0 <= upfront_fee < principal:
        raise _fail(f"{path}.upfront_fee", f"must be at least 0 and less than the principal, not {upfront_fee!r}")


def _check_date(path: str, value: str) -> None:
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        raise _fail(path, f"is {value!r:.60}, not an ISO date like 2026-11-23") from None


def _fail(path: str, problem: str) -> DataError:
    return DataError(f"report summary: {path} {problem}")
