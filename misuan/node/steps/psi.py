"""Job step ``psi``: private set intersection of the two parties' ID columns (:mod:`misuan.protocols.psi`).

Spec::

    [[step]]
    kind = "psi"
    parties = ["bank", "partner"]          # exactly two
    params = { reveal = "both", normalize = { case = "casefold" } }

Params: :class:`~misuan.protocols.psi.PsiParams`, all optional: ``reveal`` (``"both"``, ``"size"``
or one of the step's parties), ``normalize`` (a table of
:class:`~misuan.protocols.psi.IdNormalization` fields, the same in both parties' specs: PSI refuses
to run on a mismatch), ``batch_size``, ``workers``.

Outputs: ``size`` (``null`` where this party does not learn it), ``rows`` (this party's input rows),
``peer_size``, ``reveal``, ``timings``, ``seconds``, ``x25519`` (the library that did the curve
work: ``crypto_mb`` or ``openssl``). Where this party learns the shared rows, the artefact
``rows.npy`` holds ``local_rows`` (int64, load with ``allow_pickle=False``): in mode ``both`` both
parties' files list the same customers in the same order, so a later step aligns with
``ctx.data.iloc[np.load(ctx.artefact_of("psi", "rows.npy"))]``. The file is written to a temporary
name and renamed, and the runner keeps the step's directory only if the step succeeded, so a killed
run never leaves a partial ``rows.npy``; PSI itself keeps no state, so an unfinished step is simply
rerun on both parties.
"""

from __future__ import annotations

import time

import numpy as np

from misuan.atomic_files import atomic_open
from misuan.errors import JobSpecError
from misuan.node.spec import JobSpec, StepSpec
from misuan.node.steps.context import StepContext, StepKind, StepResult, param_error, where
from misuan.params import parse_params
from misuan.protocols.psi import PROTOCOL, IdNormalization, PsiParams, psi

__all__ = ["KIND", "ROWS_FILE", "check_psi", "normalization_of", "psi_params", "run_psi"]

ROWS_FILE = "rows.npy"


def psi_params(step: StepSpec, spec: JobSpec) -> PsiParams:
    """A PSI step's params, parsed (errors name ``step[i] 'name'.params.<field>``)."""
    params: PsiParams = parse_params(PsiParams, step.params, f"{where(step, spec)}.params", JobSpecError)
    return params


def normalization_of(step: StepSpec, spec: JobSpec) -> IdNormalization:
    """The ID normalisation a PSI step's params ask for (later steps use it to recompute normalised IDs)."""
    return psi_params(step, spec).normalize


def check_psi(step: StepSpec, spec: JobSpec) -> None:
    """What the params alone cannot say: two parties, and ``reveal`` names one of them (or both/size)."""
    params = psi_params(step, spec)
    if len(step.parties) != 2:
        raise param_error(step, spec, "parties", f"PSI runs between exactly two parties, not {list(step.parties)}")
    if params.reveal not in ("both", "size", *step.parties):
        raise param_error(
            step, spec, "reveal", f"must be 'both', 'size' or one of {list(step.parties)}, not {params.reveal!r}"
        )


def run_psi(ctx: StepContext) -> StepResult:
    t0 = time.monotonic()
    params = ctx.param(PsiParams)
    peer = next(p for p in ctx.step.parties if p != ctx.party)
    result = psi(
        ctx.channel,
        ctx.data[ctx.dataset.id_column],
        peer,
        reveal=params.reveal,
        normalize=params.normalize,
        batch_size=params.batch_size,
        workers=params.workers,
        progress=False,
        step=ctx.step.name,
    )
    outputs = {
        "size": result.size, "rows": len(ctx.data), "peer_size": result.peer_size,
        "reveal": params.reveal, "timings": result.timings, "seconds": time.monotonic() - t0,
        "x25519": result.x25519,
    }
    if result.local_rows is None:
        return StepResult(outputs)
    with atomic_open(ctx.artefact_dir / ROWS_FILE, "wb") as f:
        np.save(f, result.local_rows, allow_pickle=False)
    return StepResult(outputs, [ROWS_FILE])


KIND = StepKind(
    "psi", run_psi, check_psi, params=(PsiParams,), protocols=(PROTOCOL,),
    summary="private set intersection of the parties' ID columns",
)
