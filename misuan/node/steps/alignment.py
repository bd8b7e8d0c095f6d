"""What the credit steps after PSI share: the step's two parties, the aligned rows, labels, features.

Every such step (``woe``, ``secureboost``, ``evaluate``) runs between exactly one label party and
one feature party, on this party's rows of the shared customers in the order both agreed on in PSI
(``rows.npy``, written with ``reveal = "both"``); :func:`holdout_split` derives the same train and
hold-out rows on both sides from the normalised IDs, with nothing exchanged.
"""

from __future__ import annotations

import hashlib
from typing import Final

import numpy as np
import pandas as pd

from misuan.errors import DataError, JobSpecError, MissingColumnError, NoOverlapError
from misuan.node.spec import JobSpec, StepSpec
from misuan.node.steps.context import StepContext
from misuan.node.steps.psi import ROWS_FILE, normalization_of

__all__ = [
    "FEATURE_PARTY", "LABEL_PARTY", "aligned", "feature_columns", "holdout_split", "labels",
    "normalised_ids", "numeric_matrix", "peer", "step_parties",
]

LABEL_PARTY: Final = "label_party"
FEATURE_PARTY: Final = "feature_party"


def step_parties(step: StepSpec, spec: JobSpec) -> tuple[str, str]:
    """(label party, feature party) of a two-party step, or a JobSpecError naming the step."""
    names = list(step.parties) if step.parties else list(spec.party_names)
    roles = {n: spec.party(n).role for n in names}
    labels = [n for n, r in roles.items() if r == LABEL_PARTY]
    features = [n for n, r in roles.items() if r == FEATURE_PARTY]
    if len(names) != 2 or len(labels) != 1 or len(features) != 1:
        raise JobSpecError(
            f"step {step.name!r} ({step.kind}) runs between exactly one label_party and one feature_party; "
            f"it has {names}: set its `parties`"
        )
    return labels[0], features[0]


def peer(ctx: StepContext) -> str:
    label, feature = step_parties(ctx.step, ctx.spec)
    return feature if ctx.party == label else label


def feature_columns(ctx: StepContext) -> list[str]:
    ds = ctx.dataset
    if ds.features == "all":
        skip = {ds.id_column, ds.label_column}
        return [c for c in ctx.data.columns if c not in skip]
    missing = [c for c in ds.features if c not in ctx.data.columns]
    if missing:
        raise MissingColumnError(f"{ctx.party}'s dataset {ds.path} has no feature column(s) {missing}")
    return list(ds.features)


def aligned(ctx: StepContext, psi_step: str = "psi") -> pd.DataFrame:
    """This party's rows of the shared customers, in the order both parties agreed on in PSI."""
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
    return ctx.data.iloc[rows].reset_index(drop=True)


def labels(ctx: StepContext, df: pd.DataFrame) -> np.ndarray:
    col = ctx.dataset.label_column
    if col is None:
        raise JobSpecError(f"party {ctx.party!r} is the label_party: give its dataset a label_column")
    y = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
    if np.isnan(y).any() or not np.isin(y, (0.0, 1.0)).all():
        raise DataError(f"{ctx.party}'s label column {col!r} must hold only 0 and 1 (found other values or blanks)")
    return y.astype(np.int64)


def numeric_matrix(ctx: StepContext, df: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    bad = [c for c in cols if not pd.api.types.is_numeric_dtype(df[c])]
    if bad:
        raise DataError(f"{ctx.party}'s feature column(s) {bad} are not numeric: encode categories as numbers first")
    return df[cols].astype(float)


# --- woe -------------------------------------------------------------------------------------------


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


def normalised_ids(ctx: StepContext, df: pd.DataFrame, psi_step: str = "psi") -> list[str]:
    """This party's IDs of ``df`` as the PSI step normalised them (equal on both sides)."""
    spec = next((s for s in ctx.spec.steps if s.name == psi_step), None)
    if spec is None:
        raise JobSpecError(f"step {ctx.step.name!r} needs a PSI step named {psi_step!r} before it")
    norm = normalization_of(spec, ctx.spec)
    out = []
    for raw in df[ctx.dataset.id_column]:
        key = norm.apply(str(raw))
        if key is None:  # PSI accepted this ID, so its normalisation cannot fail now
            raise DataError(f"{ctx.party}: ID {raw!r} no longer normalises as it did in PSI")
        out.append(key)
    return out
