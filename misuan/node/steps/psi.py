"""Job step ``psi``: private set intersection of the two parties' ID columns (:mod:`misuan.protocols.psi`).

Spec::

    [[step]]
    kind = "psi"
    parties = ["bank", "partner"]          # exactly two
    params = { reveal = "both", normalize = { case = "casefold" } }

Params (all optional): ``reveal`` — ``"both"`` (default), ``"size"`` or one of the step's parties;
``normalize`` — fields of :class:`~misuan.protocols.psi_ids.IdNormalization` (``strip``, ``case``,
``unicode``, ``kind``, ``country_code``), the same in both parties' specs (PSI refuses to run on a
mismatch); ``batch_size``; ``workers`` (processes for the curve work; default all cores).

Outputs: ``size`` (``null`` where this party does not learn it), ``rows`` (this party's input rows),
``peer_size``, ``reveal``, ``timings``, ``seconds``, ``x25519`` (the library that did the curve
work: ``crypto_mb`` or ``openssl``). Where
this party learns the shared rows, the artefact ``rows.npy`` holds ``local_rows`` (int64, load with
``allow_pickle=False``): in mode ``both`` both parties' files list the same customers in the same
order, so a later step aligns with ``ctx.data.iloc[np.load(ctx.artefact_of("psi", "rows.npy"))]``.
The file is written to a temporary name and renamed, and the runner keeps the step's directory only
if the step succeeded, so a killed run never leaves a partial ``rows.npy``; PSI itself keeps no
state, so an unfinished step is simply rerun on both parties.

Registration (by the integrator, in ``misuan.node.steps._register_builtin_steps``)::

    from misuan.node.steps_psi import check_psi, run_psi
    register_step("psi", run_psi, check_psi)
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from misuan.atomic_files import atomic_open
from misuan.errors import ConfigError
from misuan.node.spec import JobSpec, StepSpec
from misuan.node.steps.context import StepContext, StepKind, StepResult, check_known_params, param_error
from misuan.protocols.psi import MAX_BATCH_SIZE, psi
from misuan.protocols.psi_ids import IdNormalization

__all__ = ["ROWS_FILE", "check_psi", "normalization_of", "run_psi"]

ROWS_FILE = "rows.npy"
_PARAMS = ("reveal", "normalize", "batch_size", "workers")


def normalization_of(step: StepSpec, spec: JobSpec) -> IdNormalization:
    """The ID normalisation a PSI step's params ask for (later steps use it to recompute normalised IDs)."""
    raw = step.params.get("normalize", {})
    if not isinstance(raw, Mapping):
        raise param_error(step, spec, "normalize", "must be a table such as { case = \"casefold\" }")
    fields = set(IdNormalization.__dataclass_fields__)
    unknown = sorted(set(raw) - fields)
    if unknown:
        raise param_error(step, spec, "normalize", f"unknown key(s) {unknown}; allowed: {sorted(fields)}")
    try:
        return IdNormalization(**dict(raw))
    except ConfigError as exc:
        raise param_error(step, spec, "normalize", str(exc)) from None


def check_psi(step: StepSpec, spec: JobSpec) -> None:
    check_known_params(step, spec, _PARAMS)
    if len(step.parties) != 2:
        raise param_error(step, spec, "parties", f"PSI runs between exactly two parties, not {list(step.parties)}")
    reveal = step.params.get("reveal", "both")
    if reveal not in ("both", "size", *step.parties):
        raise param_error(step, spec, "reveal", f"must be 'both', 'size' or one of {list(step.parties)}, not {reveal!r}")
    normalization_of(step, spec)
    for key, low, high in (("batch_size", 1, MAX_BATCH_SIZE), ("workers", 1, 256)):
        value = step.params.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high):
            raise param_error(step, spec, key, f"must be an integer from {low} to {high}, not {value!r}")


def run_psi(ctx: StepContext) -> StepResult:
    t0 = time.monotonic()
    peer = next(p for p in ctx.step.parties if p != ctx.party)
    kwargs: dict[str, Any] = {k: ctx.params[k] for k in ("batch_size", "workers") if k in ctx.params}
    result = psi(
        ctx.channel,
        ctx.data[ctx.dataset.id_column],
        peer,
        reveal=ctx.params.get("reveal", "both"),
        normalize=normalization_of(ctx.step, ctx.spec),
        progress=False,
        step=ctx.step.name,
        **kwargs,
    )
    outputs = {
        "size": result.size, "rows": len(ctx.data), "peer_size": result.peer_size,
        "reveal": ctx.params.get("reveal", "both"), "timings": result.timings, "seconds": time.monotonic() - t0,
        "x25519": result.x25519,
    }
    if result.local_rows is None:
        return StepResult(outputs)
    with atomic_open(ctx.artefact_dir / ROWS_FILE, "wb") as f:
        np.save(f, result.local_rows, allow_pickle=False)
    return StepResult(outputs, [ROWS_FILE])


KIND = StepKind("psi", run_psi, check_psi, summary="private set intersection of the parties' ID columns")
