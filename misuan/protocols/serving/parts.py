"""Which served model a part file holds: SecureBoost trees or a scorecard, for either side."""

from __future__ import annotations

from typing import Any

from misuan.protocols.serving.bank import BankModel, BankPart
from misuan.protocols.serving.partner import PartnerModel, PartnerPart
from misuan.protocols.serving.scorecard import BankScorecard, PartnerScorecard, is_scorecard

__all__ = ["bank_part", "partner_part"]


def bank_part(doc: dict[str, Any], partner: str) -> BankPart:
    """The label party's side of a model part document (a scorecard part, or a SecureBoost ``model``)."""
    return BankScorecard(doc, partner) if is_scorecard(doc) else BankModel(doc)


def partner_part(doc: dict[str, Any], label_party: str) -> PartnerPart:
    """The feature party's side of a model part document."""
    return PartnerScorecard(doc, label_party) if is_scorecard(doc) else PartnerModel(doc)
