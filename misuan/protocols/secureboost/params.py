"""SecureBoost's hyperparameters, declared once (XGBoost's names and meanings).

:class:`BoostingParams` holds what every SecureBoost run chooses: the trees, their regularisation,
the binning, the encryption and the workers; it is what the job step ``secureboost`` takes.
:class:`SecureBoostParams` adds what the caller of the protocol chooses besides: the loss
(``objective``) and early stopping on an evaluation set, which the estimators fix or expose.

Each party reads its own copy: a feature party uses its ``max_bin``, ``n_jobs``, the
``monotone_constraints`` of its own features (it declares them in its schema) and its
``prediction_mode`` (``"nodes"`` consents to per-node answers); the label party checks that its
``monotone_constraints`` name only known features and agree with each feature party's declaration.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Literal

from misuan.crypto.he import MAX_BITS
from misuan.params import ParamError, check_params, param

__all__ = [
    "MAX_BIN_LIMIT", "MIN_KEY_BITS", "BoostingParams", "HistogramCrypto", "Objective", "PredictionMode", "SecureBoostParams",
]

MAX_BIN_LIMIT = 254  # bins are uint8 and one more bin holds the missing values
MIN_KEY_BITS = 2048  # the weakest HE key either party accepts (as WOE's default floor)

Objective = Literal["binary:logistic", "reg:squarederror"]
PredictionMode = Literal["leaves", "nodes"]
HistogramCrypto = Literal["auto", "ot", "he"]
_OWNER = "SecureBoost"


@dataclasses.dataclass(frozen=True)
class BoostingParams:
    """The trees, the binning and the encryption (same names and meaning as ``xgboost.XGBClassifier``)."""

    n_estimators: int = param(10, "number of trees (boosting rounds)", ge=1)
    max_depth: int = param(5, "maximum depth of a tree", ge=1, le=16)
    learning_rate: float = param(0.3, "shrinkage of every leaf value (eta)", gt=0)
    reg_lambda: float = param(1.0, "L2 regularisation of the leaf values", ge=0)
    gamma: float = param(0.0, "minimum gain of a split", ge=0)
    min_child_weight: float = param(1.0, "minimum hessian sum of a child node", ge=0)
    subsample: float = param(1.0, "fraction of the rows sampled for each tree", gt=0, le=1)
    colsample_bytree: float = param(1.0, "fraction of all parties' features sampled for each tree", gt=0, le=1)
    max_bin: int = param(32, "quantile bins per feature (one more holds the missing values)", ge=2, le=MAX_BIN_LIMIT)
    base_score: float | None = param(None, "initial prediction: a probability for logistic loss; none: the mean label")
    first_tree_label_only: bool = param(False, "grow the first tree on the label party's features only")
    histograms: HistogramCrypto = param(
        "auto", "how the label party learns the feature parties' bin sums: additive shares from OT extension (ot: fast, "
        "16 bytes of keys per row, feature and bin on each side) or HE ciphertexts (he); auto: ot while those keys fit "
        "in 2 GiB per feature party"
    )
    he_scheme: Literal["ou", "paillier"] = param("ou", "additively homomorphic scheme of the gradients (histograms = he)")
    key_bits: int = param(2048, "HE modulus size in bits", ge=MIN_KEY_BITS, le=MAX_BITS)
    frac_bits: int = param(20, "fractional bits of the fixed-point gradients", ge=8, le=40)
    n_jobs: int | None = param(None, "worker processes per party; none: every core", ge=1)
    random_state: int = param(0, "seed of the row and feature sampling", ge=0)
    monotone_constraints: Mapping[str, int] = param(
        {}, "per feature name: 1 increasing, -1 decreasing, 0 none (XGBoost's); each party declares its own features'"
    )
    prediction_mode: PredictionMode = param(
        "leaves", "what a feature party tells at prediction: per tree the leaves its splits allow, or every split decision"
    )

    def __post_init__(self) -> None:
        check_params(self, _OWNER)
        bad = {k: v for k, v in self.monotone_constraints.items() if v not in (-1, 0, 1)}
        if bad:
            raise ParamError("monotone_constraints", f"values must be -1, 0 or 1, not {bad}", _OWNER)


@dataclasses.dataclass(frozen=True)
class SecureBoostParams(BoostingParams):
    """Everything one SecureBoost training takes: :class:`BoostingParams`, the loss and early stopping."""

    objective: Objective = param("binary:logistic", "the loss: logistic (binary labels) or squared error")
    early_stopping_rounds: int | None = param(
        None, "stop after this many trees without a better evaluation metric (needs an eval set)", ge=1
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        b = self.base_score
        if self.objective == "binary:logistic" and b is not None and not 0 < b < 1:
            raise ParamError("base_score", f"must be a probability in (0, 1) for logistic loss, not {b}", _OWNER)
