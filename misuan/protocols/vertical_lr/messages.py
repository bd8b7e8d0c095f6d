"""The wire messages of vertical LR; their names are part of the protocol (``PROTOCOL``'s version)."""

from __future__ import annotations

import dataclasses

import numpy as np

from misuan.net import wire
from misuan.net.protocol import ProtocolInfo

PROTOCOL = ProtocolInfo("vertical_lr", 5, "vertical logistic regression: L2 by L-BFGS on shared coefficients, or L1 by OWL-QN")
STEP = "vertical_lr"
CHUNK_BYTES = 8 << 20  # per-row arrays travel in chunks of rows of about this size


@wire.message("vertical_lr.CommonRows")
@dataclasses.dataclass
class CommonRows:
    """From the label party to a feature party, with several: which of the customers the two share
    (positions in their PSI order) every feature party shares, in the order the training takes them."""

    positions: np.ndarray  # int64 (rows,)


@wire.message("vertical_lr.Schema")
@dataclasses.dataclass
class Schema:
    """The feature party's row count and bins per feature."""

    n_rows: int
    n_bins: list[int]


@wire.message("vertical_lr.Setup")
@dataclasses.dataclass
class Setup:
    """The label party's row count, bins per feature (the intercept first, one bin), the base rate
    rounded to 0.01, the session of every OT extension with this feature party, the parameters
    (which the feature party checks against its own), the feature parties of the training in
    order (the first is the lead: it completes the sigmoid's shares of the others' scores), and the
    number of features of every party together (the scorecard spreads its offset over them)."""

    n_rows: int
    n_bins: list[int]
    base_rate: float
    session: np.ndarray  # uint8 (16,)
    params: list[float]  # TrainingParams.as_list()
    feature_parties: list[str]
    n_features: int


@wire.message("vertical_lr.Kappa")
@dataclasses.dataclass
class Kappa:
    """The feature party's block's ``kappa = counts^T D^{-1} counts`` (label-free)."""

    kappa: float


@wire.message("vertical_lr.MaskSeed")
@dataclasses.dataclass
class MaskSeed:
    """From the lead feature party to another: the seed of their zero-sum masks on opened scalars
    (the other adds its mask, the lead subtracts the sum of all)."""

    seed: np.ndarray  # uint8 (16,)


@wire.message("vertical_lr.Gamma")
@dataclasses.dataclass
class Gamma:
    """The label party's Woodbury coefficient of the feature party's block for this preconditioning
    (from the opened projections of every block)."""

    gamma: float


@wire.message("vertical_lr.BinRows")
@dataclasses.dataclass
class BinRows:
    """The feature party's row count per bin (WOE encoding: with the opened event counts, its bins' WOE)."""

    rows: np.ndarray  # int64 (bins,)


@wire.message("vertical_lr.WoeTable")
@dataclasses.dataclass
class WoeTable:
    """The WOE of the feature party's bins as the label party computed them, on the shares' fixed-point
    grid (``woe * 2^30``): the map both then use, identical to the bit."""

    multipliers: np.ndarray  # int64 (bins,)


@wire.message("vertical_lr.OtBase")
@dataclasses.dataclass
class OtBase:
    """An OT extension's receiver's base-OT message."""

    point: np.ndarray  # uint8 (32,)


@wire.message("vertical_lr.OtPoints")
@dataclasses.dataclass
class OtPoints:
    """An OT extension's sender's base-OT points (its secret choice bits, blinded)."""

    points: np.ndarray  # uint8 (128, 32)


@wire.message("vertical_lr.OtColumns")
@dataclasses.dataclass
class OtColumns:
    """One chunk of an OT extension's columns, OTs ``start`` onwards."""

    start: int
    columns: np.ndarray  # uint8 (128, OTs / 8)


@wire.message("vertical_lr.RowWords")
@dataclasses.dataclass
class RowWords:
    """One chunk of per-row words, rows ``start`` onwards: lookup corrections, sigmoid-table entries
    or scatter corrections (which, the step's order says)."""

    start: int
    words: np.ndarray  # uint64 (rows, ...); uint32 for lookup corrections


@wire.message("vertical_lr.Products")
@dataclasses.dataclass
class Products:
    """A Gilboa product's corrections (one per OT)."""

    corrections: np.ndarray  # uint64 (OTs, rows, 2)


@wire.message("vertical_lr.Shares")
@dataclasses.dataclass
class Shares:
    """Shares mod 2^128 handed to the peer: to open scalars, to complete a sum, or the final
    coefficients."""

    words: np.ndarray  # uint64 (k, 2)


@wire.message("vertical_lr.PartScores")
@dataclasses.dataclass
class PartScores:
    """The feature party's part of joint scoring: its feature names, per row the sum of its points,
    and its worst features (indices into ``names``) with the points each falls short of its best bin."""

    names: list[str]
    points: np.ndarray  # float64 (rows,)
    features: np.ndarray  # int32 (rows, k)
    short: np.ndarray  # float64 (rows, k)


@wire.message("vertical_lr.PartnerTable")
@dataclasses.dataclass
class PartnerTable:
    """What the feature party shares of its points table, as the step's ``partner_table`` says: its
    features' names, and per feature its bins' labels and points (empty lists where not shared)."""

    names: list[str]
    labels: list[list[str]]
    points: list[list[float]]
