"""Fairness policies: the bundled files load; metrics and the pricing check from group counts."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from misuan.lending.errors import RuleFileError
from misuan.lending.fairness import (
    GroupCounts,
    audit_groups,
    group_rows,
    load_policy,
    policy_jurisdictions,
    pricing_inputs_check,
)


def test_the_bundled_policies_load_with_their_sources() -> None:
    assert policy_jurisdictions() == ["cn", "us"]
    us = load_policy("us")
    sex = us.attribute_of("SEX")
    assert sex is not None and sex.as_model_feature == "refuse" and "1691" in sex.source
    assert us.attribute_of("LIMIT_BAL") is None
    with pytest.raises(RuleFileError, match="no fairness policy 'xx'"):
        load_policy("xx")


def test_metrics_and_findings_from_group_counts() -> None:
    policy = load_policy("us")
    attr = policy.attribute_of("SEX")
    assert attr is not None
    groups = [GroupCounts("male", 100, 40, 38, 80, 20, 21.0), GroupCounts("female", 100, 60, 57, 85, 15, 15.0)]
    audit = audit_groups("SEX", attr, groups, policy)
    assert audit.approval_ratio == pytest.approx(40 / 60)
    assert audit.equal_opportunity_gap == pytest.approx(57 / 85 - 38 / 80)
    assert audit.calibration_gap == pytest.approx(0.01)
    assert len(audit.findings) == 2 and "four-fifths" in audit.findings[0] and "lowest: male" in audit.findings[0]


def test_groups_of_bands_and_categories_with_missing_values() -> None:
    age = load_policy("us").attribute_of("AGE")
    assert age is not None
    idx, labels = group_rows(age, np.array([24.0, 25.0, 61.9, 62.0, np.nan]))
    assert idx.tolist() == [0, 1, 3, 4, 5] and labels[-2:] == ["62 and over", "missing"]


def test_the_price_reads_only_declared_risk_factors() -> None:
    policy = load_policy("cn")
    assert pricing_inputs_check(policy) == []
    narrow = dataclasses.replace(policy, risk_factors=("pd",))
    assert pricing_inputs_check(narrow) == [
        f"the price reads {f!r}, which the CN policy does not declare a risk factor"
        for f in ("monthly_income", "monthly_debt_payments", "existing_debt")
    ]
