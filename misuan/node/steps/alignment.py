"""What the credit steps after PSI share: the step's two parties, the aligned rows, labels, features.

Every such step (``woe``, ``secureboost``, ``evaluate``) runs between exactly one label party and
one feature party, on this party's rows of the shared customers in the order both agreed on in PSI
(``rows.npy``, written with ``reveal = "both"``); :func:`holdout_split` derives the same train and
hold-out rows on both sides from the normalised IDs, with nothing exchanged.

What they need of a party's data is checked before anything connects (:func:`check_credit_data`,
from each kind's ``check_data``), so the run reads labels and features without checking them again.
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pandas as pd

from misuan.errors import DataError, JobSpecError, NoOverlapError
from misuan.net.protocol import FEATURE_PARTY, LABEL_PARTY
from misuan.node.column_store import FeatureColumns
from misuan.node.data import CheckedDataset, check_numeric_features
from misuan.node.spec import JobSpec, StepSpec
from misuan.node.steps.context import StepContext, where
from misuan.node.steps.psi import ROWS_FILE
from misuan.params import parse_params
from misuan.protocols.psi import PsiParams, coerce_ids, normalize_ids

__all__ = [
    "FEATURE_PARTY", "LABEL_PARTY", "AlignedRows", "aligned", "aligned_rows", "check_credit_data", "holdout_split",
    "labels", "normalised_ids", "peer", "psi_params", "psi_step_between", "step_parties", "vertical_parties",
]



def vertical_parties(step: StepSpec, spec: JobSpec, *, at_most: int | None = None) -> tuple[str, list[str]]:
    """(label party, feature parties in the step's order) of a step with one label party and one (or
    up to ``at_most``) feature parties, or a JobSpecError naming the step."""
    roles = {n: spec.party(n).role for n in step.parties}
    labels = [n for n, r in roles.items() if r == LABEL_PARTY]
    features = [n for n, r in roles.items() if r == FEATURE_PARTY]
    if len(labels) != 1 or not features or len(labels) + len(features) != len(step.parties) \
            or (at_most is not None and len(features) > at_most):
        which = "exactly one label_party and one feature_party" if at_most == 1 else \
            "one label_party and one or more feature_parties"
        raise JobSpecError(f"step {step.name!r} ({step.kind}) runs between {which}; it has {list(step.parties)}: "
                           "set its `parties`")
    return labels[0], features


def step_parties(step: StepSpec, spec: JobSpec) -> tuple[str, str]:
    """(label party, feature party) of a two-party step, or a JobSpecError naming the step."""
    label, features = vertical_parties(step, spec, at_most=1)
    return label, features[0]


def psi_step_between(step: StepSpec, spec: JobSpec, label: str, feature: str) -> StepSpec:
    """The PSI step before ``step`` between ``label`` and ``feature`` whose rows the step aligns on:
    the one named ``psi`` (the other credit steps' rows), else the last one; or a JobSpecError
    saying which PSI step to add, or to run with ``reveal = "both"``."""
    before = spec.steps[: spec.steps.index(step)]
    found = [s for s in before if s.kind == "psi" and set(s.parties) == {label, feature}]
    if not found:
        raise JobSpecError(
            f"step {step.name!r} ({step.kind}) needs a PSI step between {label!r} and {feature!r} before it, "
            f'with reveal = "both" (a step with kind = "psi" and parties = [{label!r}, {feature!r}])'
        )
    psi = next((s for s in found if s.name == "psi"), found[-1])
    if psi_params(psi, spec).reveal != "both":
        raise JobSpecError(f"step {step.name!r} ({step.kind}) aligns on PSI step {psi.name!r}, which must run with "
                           'reveal = "both" (both parties hold the shared customers\' rows)')
    return psi


def psi_params(psi: StepSpec, spec: JobSpec) -> PsiParams:
    """A PSI step's params, parsed (the check of that step refuses bad ones first)."""
    return parse_params((PsiParams,), psi.params, f"{where(psi, spec)}.params", JobSpecError)[0]


def peer(ctx: StepContext) -> str:
    label, feature = step_parties(ctx.step, ctx.spec)
    return feature if ctx.party == label else label


def check_credit_data(
    step: StepSpec, spec: JobSpec, data: CheckedDataset, *, features: bool, both_classes: bool
) -> None:
    """What a credit step needs of this party's data: numeric ``features`` where it computes on
    them, and, on the label party, labels of ``both_classes`` where it fits on them."""
    if features:
        check_numeric_features(data)
    label = data.spec.label_column
    if both_classes and label is not None:
        present = sorted(int(v) for v in np.unique(data.labels()))
        if present != [0, 1]:
            raise DataError(
                f"{data.name}: label column {label!r} is {present[0]} on all {data.n_rows} rows; "
                f"{where(step, spec)} ({step.kind}) needs both 0 and 1 among the labels"
            )


@dataclasses.dataclass(frozen=True)
class AlignedRows:
    """Some rows of this party's dataset (positions, in PSI's agreed order), read as a step needs them:
    from the DataFrame, or for a streamed dataset a column at a time from its store."""

    data: CheckedDataset
    rows: np.ndarray  # int64 positions into the dataset

    def __len__(self) -> int:
        return len(self.rows)

    def take(self, positions: np.ndarray) -> AlignedRows:
        """The rows at ``positions`` of these rows (a train or hold-out split)."""
        return AlignedRows(self.data, self.rows[np.asarray(positions, dtype=np.int64)])

    def labels(self) -> np.ndarray:
        """The label party's labels of these rows as int64 0/1."""
        if self.data.spec.label_column is None:
            raise TypeError(f"{self.data.party} is not the label party: it holds no labels")
        if self.data.store is not None:
            return self.data.store.labels(self.rows).astype(np.int64)
        return self.data.frame[self.data.spec.label_column].to_numpy(dtype=np.int64)[self.rows]

    def ids(self) -> pd.Series:
        """The raw IDs of these rows, as text."""
        if self.data.store is not None:
            return self.data.store.ids(self.rows)
        return self.data.frame[self.data.spec.id_column].iloc[self.rows].reset_index(drop=True)

    def features(self) -> pd.DataFrame | FeatureColumns:
        """This party's feature columns of these rows as floats: a DataFrame, or for a streamed dataset
        :class:`FeatureColumns` (read a column at a time; what the streaming protocols take)."""
        names = list(self.data.features)
        if self.data.store is not None:
            return FeatureColumns(self.data.store, names, self.rows)
        return self.data.frame[names].iloc[self.rows].reset_index(drop=True).astype(float)

    def feature_frame(self) -> pd.DataFrame:
        """The feature columns of these rows as a float DataFrame (for a streamed dataset built a
        column at a time: for the hold-out a prediction scores, not for training)."""
        columns = self.features()
        if isinstance(columns, pd.DataFrame):
            return columns
        return pd.DataFrame({name: columns[name] for name in columns})


def aligned_rows(ctx: StepContext, psi_step: str = "psi") -> AlignedRows:
    """This party's rows of the shared customers, in the order both parties agreed on in PSI."""
    return AlignedRows(ctx.own_data, _psi_rows(ctx, psi_step))


def aligned(ctx: StepContext, psi_step: str = "psi") -> pd.DataFrame:
    """This party's rows of the shared customers as a DataFrame, in the order both agreed on in PSI."""
    return ctx.data.iloc[_psi_rows(ctx, psi_step)].reset_index(drop=True)


def _psi_rows(ctx: StepContext, psi_step: str) -> np.ndarray:
    try:
        path = ctx.artefact_of(psi_step, ROWS_FILE)
    except JobSpecError as exc:
        raise JobSpecError(
            f"step {ctx.step.name!r} needs the aligned rows of a PSI step named {psi_step!r} run with "
            f"reveal = \"both\" before it ({exc})"
        ) from None
    rows = np.load(path, allow_pickle=False)
    if len(rows) == 0:
        raise NoOverlapError(
            f"step {ctx.step.name!r}: PSI found no shared customers, so there is nothing to compute on; "
            "check both parties' ID columns and the PSI normalize option"
        )
    return rows.astype(np.int64)


def labels(ctx: StepContext, df: pd.DataFrame) -> np.ndarray:
    """The label party's labels of the rows ``df`` (0/1 on every row: :mod:`misuan.node.data`)."""
    if ctx.label_column is None:
        raise TypeError(f"{ctx.party} is not the label party: it holds no labels")
    return df[ctx.label_column].to_numpy(dtype=np.int64)


# --- secureboost: the hold-out ---------------------------------------------------------------------
def holdout_split(keys: list[str], test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) positions of the shared customers, a function of their normalised IDs and ``seed``.

    Both parties hold the same normalised IDs of the intersection (PSI with ``reveal = "both"``), so
    both compute the same split with nothing exchanged, and a rerun of the job (whose PSI order is
    new, because blinding keys are fresh) holds out the same customers.
    """
    salt = f"misuan-holdout/{seed}/".encode()
    u = np.array(
        [int.from_bytes(hashlib.blake2b(salt + k.encode("utf-8"), digest_size=8).digest(), "big") for k in keys],
        dtype=np.float64,
    ) / 2.0**64
    test = u < test_fraction
    return np.flatnonzero(~test), np.flatnonzero(test)


def normalised_ids(ctx: StepContext, df: pd.DataFrame | pd.Series, psi_step: str = "psi") -> list[str]:
    """This party's IDs of ``df`` (its rows, or their ID column) as the PSI step normalised them (equal on both sides).

    The normalisation is the PSI step's parsed params; the PSI step's data check made sure every ID
    normalises to a distinct, non-empty key.
    """
    norm = ctx.param(PsiParams, psi_step).normalize
    ids = df if isinstance(df, pd.Series) else df[ctx.dataset.id_column]
    return [k.decode("utf-8") for k in normalize_ids(coerce_ids(ids), norm)]
