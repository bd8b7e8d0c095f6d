"""What the credit steps write for the report: the step-output schema, owned below the node and the report.

The ``woe`` step writes ``features``, a list of :class:`FeatureIv` rows (as dicts), and the
``secureboost`` step writes ``feature_importance``, a list of :class:`FeatureImportance` rows; the
report's summary (:class:`misuan.report.schema.Summary`) takes both as they are. Keeping the shapes
here lets the node write them and the report read them without either importing the other.

:func:`iv_from_woe_result` and :func:`importance_from_secureboost` turn the protocols' own results
into these rows.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from misuan.errors import DataError

__all__ = ["FeatureImportance", "FeatureIv", "WoeBin", "importance_from_secureboost", "iv_from_woe_result"]


@dataclasses.dataclass(frozen=True)
class WoeBin:
    """One bin; the keys of ``misuan.protocols.woe.table.BinStats.to_dict()``."""

    label: str  # e.g. "(20000, 50000]" or "missing"
    count: int  # customers in the bin
    positives: int  # defaulters in the bin (label 1)
    woe: float
    contains_missing: bool = False  # holds the missing values: left out of the monotonicity check
    index: int | None = None
    lower: float | str | None = None  # JSON has no infinity: "-inf" / "inf" arrive as strings
    upper: float | str | None = None
    iv: float | None = None  # this bin's contribution to the feature's IV


@dataclasses.dataclass(frozen=True)
class FeatureIv:
    """WOE and IV of one feature (computed jointly for the partner's).

    The keys of ``misuan.protocols.woe.table.FeatureWoe.to_dict()`` plus ``party``.
    """

    feature: str
    party: str  # the party holding the feature
    iv: float
    bins: list[WoeBin]
    ks: float | None = None  # KS of the feature's bins against the label, if computed
    monotonic: bool | None = None  # None: computed from the WOE of the bins without missing values
    method: str = ""  # binning method, e.g. "quantile", "chimerge"
    trend: str = ""  # "increasing", "decreasing", "flat" or "none"
    n_rows: int | None = None
    n_positives: int | None = None
    edges_shared: bool | None = None  # False: the bank saw the partner's bins only as "bin 0", "bin 1", ...


@dataclasses.dataclass(frozen=True)
class FeatureImportance:
    feature: str  # as the reporting party knows it (a peer's feature may be an opaque "partner:f3")
    party: str
    gain: float  # total split gain
    splits: int  # number of splits on it


def iv_from_woe_result(woe_result: dict[str, Any], party: str) -> list[dict[str, Any]]:
    """:class:`FeatureIv` rows from a WOE step's ``WoeResult.to_dict()``, every feature held by ``party``."""
    features = woe_result.get("features") if isinstance(woe_result, dict) else None
    if not isinstance(features, list):
        raise DataError("iv_from_woe_result: expected WoeResult.to_dict(), a dict with a 'features' list")
    return [{**f, "party": party} for f in features]


def importance_from_secureboost(importance: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """:class:`FeatureImportance` rows from SecureBoost's ``{"party:feature": {"total_gain", "weight"}}``.

    The key is split at its first colon (party names have none; feature names may).
    """
    out = []
    for key, value in importance.items():
        party, sep, feature = key.partition(":")
        if not sep or not party or not feature:
            raise DataError(f"importance_from_secureboost: key {key!r:.60} is not 'party:feature'")
        try:
            out.append({"feature": feature, "party": party, "gain": float(value["total_gain"]),
                        "splits": int(value["weight"])})
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(
                f"importance_from_secureboost: {key!r:.60} needs numbers 'total_gain' and 'weight' ({exc})"
            ) from None
    return out
