"""A loan product: the terms the policy does not set per borrower, and a loan of it checked against the caps.

The policy (:mod:`misuan.lending.policy`) gives each borrower a limit and a nominal annual rate; a
:class:`LoanProduct` adds the rest of the contract: monthly equal instalments (等额本息) over
``term_months`` and an upfront fee deducted from the proceeds. :func:`check_product` builds the loan
of one principal at one rate, computes its PBoC annualised rate (PBoC Announcement [2021] No. 3: the
fee counts, on the principal actually received, so the annualised rate is above the nominal rate the
policy priced) and checks it against the rule set of the product's jurisdiction and lender type
(:func:`misuan.lending.caps.check_caps`). The policy compares the *nominal* rate with the caps, so
a product with a fee must be checked this way: at the highest rate the policy offers, the fee may
take the annualised rate over a cap the nominal rate respects.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math

from misuan.lending.caps import (
    CapReport,
    LoanFacts,
    PolicyCaps,
    RuleSet,
    binding_caps,
    check_caps,
    load_rules,
)
from misuan.lending.rates import PbocRate, pboc_rate
from misuan.lending.schedule import Schedule, equal_instalment
from misuan.lending.timing import add_months
from misuan.params import check_params, param

__all__ = ["LoanProduct", "ProductCheck", "check_product"]


@dataclasses.dataclass(frozen=True)
class LoanProduct:
    """A consumer instalment loan: equal monthly instalments and an upfront fee, under one rule set."""

    name: str = param("instalment loan", "the product's name, as borrowers see it")
    jurisdiction: str = param("CN", "rule set of the caps: misuan/lending/rules/caps_<code>.toml")
    lender: str = param("bank_internet", "lender type the caps bind (a lender type of that rule set)")
    currency: str = param("CNY", "currency of every amount")
    term_months: int = param(12, "number of monthly equal instalments (等额本息)", ge=1, le=360)
    upfront_fee_rate: float = param(0.01, "fee deducted from the proceeds, as a share of the principal", ge=0, lt=1)

    def __post_init__(self) -> None:
        check_params(self, "loan product")

    def upfront_fee(self, principal: float) -> float:
        """The fee on ``principal``, rounded half-up to cents."""
        return math.floor(principal * self.upfront_fee_rate * 100 + 0.5 + 1e-9) / 100

    def term_days(self, start: dt.date) -> int:
        """Days from ``start`` to the last instalment (the term some caps depend on)."""
        return (add_months(start, self.term_months) - start).days

    def schedule(self, principal: float, annual_rate: float, start: dt.date) -> Schedule:
        """The repayment schedule of ``principal`` at the nominal ``annual_rate``, from ``start``."""
        return equal_instalment(principal, annual_rate, self.term_months, start=start,
                                upfront_fee=self.upfront_fee(principal))

    def caps(self, ruleset: RuleSet, when: dt.date) -> PolicyCaps:
        """The tightest rate and amount caps in force on ``when`` for this lender type and term."""
        return binding_caps(ruleset, self.lender, when, term_days=self.term_days(when))


@dataclasses.dataclass(frozen=True)
class ProductCheck:
    """One loan of a product: its schedule, PBoC annualised rate (fees included) and caps check."""

    schedule: Schedule
    rate: PbocRate
    caps: CapReport


def check_product(product: LoanProduct, principal: float, annual_rate: float, start: dt.date,
                  ruleset: RuleSet | None = None) -> ProductCheck:
    """The loan of ``principal`` at the nominal ``annual_rate`` under ``product``, checked against the
    caps of its jurisdiction (``ruleset``, default the bundled one) on ``start``: the simple
    annualised rate is the figure Chinese caps are quoted in, the compound one is checked too."""
    rules = ruleset if ruleset is not None else load_rules(product.jurisdiction)
    schedule = product.schedule(principal, annual_rate, start)
    rate = pboc_rate(schedule)
    facts = LoanFacts(product.lender, start, annualised_rate=rate.simple, annualised_rate_compound=rate.compound,
                      amount=principal, term_days=product.term_days(start))
    return ProductCheck(schedule, rate, check_caps(facts, rules))
