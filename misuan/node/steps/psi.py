"""Job step ``psi``: private set intersection of the two parties' ID columns (:mod:`misuan.protocols.psi`).

Spec::

    [[step]]
    kind = "psi"
    parties = ["bank", "partner"]          # exactly two
    params = { reveal = "both", normalize = { case = "casefold" } }

Params: :class:`~misuan.protocols.psi.PsiParams`, all optional: ``reveal`` (``"both"``, ``"size"``
or one of the step's parties), ``protocol`` (``"auto"``: KKRT-PSI from OT extension, or ECDH-PSI
for ``reveal = "size"``; ``"kkrt"``; ``"ecdh"``), ``spill`` (KKRT over ID buckets on disk, one in
memory, resumable per bucket from the job's ``work/`` directory when the job is resumed; a streamed
dataset's IDs go there a chunk at a time; both parties' specs say the same, so a party may stream
its dataset or not), ``normalize`` (a table of
:class:`~misuan.protocols.psi.IdNormalization` fields, the same in both parties' specs: PSI refuses
to run on a mismatch), ``batch_size``, ``workers``. Before anything connects, each party's IDs are
checked under ``normalize`` (:func:`check_psi_data`: valid, non-empty, still distinct), and later
steps read the parsed normalisation (``ctx.param(PsiParams, "psi")``) rather than parse it again.

Outputs: ``size`` (``null`` where this party does not learn it), ``rows`` (this party's input rows),
``peer_size``, ``reveal``, ``protocol``, ``timings``, ``seconds``, ``x25519`` (the library that did
the curve work: ``crypto_mb`` or ``openssl``; none for KKRT). Where this party learns the shared rows, the artefact
``rows.npy`` holds ``local_rows`` (int64, load with ``allow_pickle=False``): in mode ``both`` both
parties' files list the same customers in the same order, so a later step aligns with
``ctx.data.iloc[np.load(ctx.artefact_of("psi", "rows.npy"))]``. The file is written to a temporary
name and renamed, and the runner keeps the step's directory only if the step succeeded, so a killed
run never leaves a partial ``rows.npy``; PSI itself keeps no state, so an unfinished step is simply
rerun on both parties.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator

import numpy as np
import pandas as pd

from misuan.atomic_files import atomic_open
from misuan.errors import DataError, DuplicateIdError, EmptyIdError, JobSpecError
from misuan.node.column_store import ColumnStore
from misuan.node.data import CheckedDataset, row_places
from misuan.node.spec import JobSpec, StepSpec
from misuan.node.steps.context import ParsedParams, StepContext, StepKind, StepResult, param_error, where
from misuan.node.steps.preview import PlannedDisclosure, plan
from misuan.protocols.kkrt import PROTOCOL as KKRT_PROTOCOL
from misuan.protocols.kkrt import disclosures as kkrt_disclosures
from misuan.protocols.kkrt import receiver_of
from misuan.protocols.psi import PROTOCOL, IdNormalization, PsiParams, psi, psi_chunked
from misuan.protocols.psi import disclosures as psi_disclosures

__all__ = ["KIND", "ROWS_FILE", "check_psi", "check_psi_data", "run_psi"]

ROWS_FILE = "rows.npy"
_SHOWN = 3  # how many colliding IDs a message quotes


def check_psi(step: StepSpec, spec: JobSpec, parsed: ParsedParams) -> None:
    """What the params alone cannot say: two parties, and ``reveal`` names one of them (or both/size)."""
    params: PsiParams = parsed[PsiParams]
    if len(step.parties) != 2:
        raise JobSpecError(f"{where(step, spec)}.parties: PSI runs between exactly two parties, not {list(step.parties)}")
    if params.reveal not in ("both", "size", *step.parties):
        raise param_error(
            step, spec, "reveal", f"must be 'both', 'size' or one of {list(step.parties)}, not {params.reveal!r}"
        )
    if params.reveal == "size" and params.protocol == "kkrt":
        raise param_error(step, spec, "protocol", 'KKRT-PSI cannot reveal only the size: use "ecdh" or "auto" with reveal = "size"')
    if params.spill and params.resolved_protocol != "kkrt":
        raise param_error(step, spec, "spill", 'spilled buckets are KKRT-PSI\'s: use protocol = "kkrt" (or "auto" with '
                          'reveal other than "size"), or spill = false')


def check_psi_data(step: StepSpec, spec: JobSpec, parsed: ParsedParams, data: CheckedDataset) -> None:
    """This party's IDs stay valid, non-empty and distinct under the step's ``normalize``.

    The raw IDs are already unique and non-empty (:mod:`misuan.node.data`); a normalisation may
    still empty them (a phone number of dashes), refuse them (letters in a phone number) or merge
    two (``A1`` and ``a1`` under ``case = "casefold"``). PSI itself refuses all three too, since it
    cannot trust the peer's checks, but only once both parties have connected.
    """
    norm = parsed[PsiParams].normalize
    column = data.spec.id_column
    under = f"under {where(step, spec)}.params.normalize"
    if data.store is not None:
        _check_streamed_ids(data, data.store, norm, under)
        return
    ids = data.frame[column]
    keys = pd.Series([norm.apply(v) for v in ids], dtype=object)
    _check_valid_keys(data, ids, keys, norm, under, 0)
    repeated = np.flatnonzero(keys.duplicated(keep=False).to_numpy())
    if len(repeated):
        _refuse_repeats(data, ids, keys, repeated, under)


def _check_valid_keys(
    data: CheckedDataset, ids: pd.Series, keys: pd.Series, norm: IdNormalization, under: str, start: int,
) -> None:
    """Refuse IDs that the normalisation refuses or empties; ``start``: the row of ``ids[0]``."""
    column = data.spec.id_column
    invalid = np.flatnonzero(keys.isna().to_numpy())
    if len(invalid):
        raise DataError(
            f"{data.name}: id column {column!r} is not a valid {norm.kind} value {under} on "
            f"{row_places(data.spec, [int(i) + start for i in invalid])} (e.g. {ids.iloc[invalid[0]]!r}); "
            "fix them or use kind = \"text\""
        )
    empty = np.flatnonzero((keys == "").to_numpy())
    if len(empty):
        raise EmptyIdError(
            f"{data.name}: id column {column!r} is empty {under} on {row_places(data.spec, [int(i) + start for i in empty])} "
            f"(e.g. {ids.iloc[empty[0]]!r}); every row needs an id"
        )


def _check_streamed_ids(data: CheckedDataset, store: ColumnStore, norm: IdNormalization, under: str) -> None:
    """The same checks a chunk at a time: normalised-ID hashes checked in buckets on disk, then the suspects' IDs."""
    def key_hashes() -> Iterator[np.ndarray]:
        start = 0
        for ids in store.iter_ids():
            keys = pd.Series([norm.apply(v) for v in ids], dtype=object)
            _check_valid_keys(data, ids, keys, norm, under, start)
            yield pd.util.hash_array(keys.to_numpy(dtype=object)).view(np.int64)
            start += len(ids)

    suspects = store.repeated_positions(key_hashes())
    if not len(suspects):
        return
    ids = store.ids(suspects)
    keys = pd.Series([norm.apply(v) for v in ids], dtype=object)
    repeated = np.flatnonzero(keys.duplicated(keep=False).to_numpy())
    if len(repeated):
        _refuse_repeats(data, ids, keys, repeated, under, suspects)


def _refuse_repeats(
    data: CheckedDataset, ids: pd.Series, keys: pd.Series, repeated: np.ndarray, under: str,
    positions: np.ndarray | None = None,
) -> None:
    column = data.spec.id_column
    first = keys.iloc[repeated[0]]
    same = [str(ids.iloc[i]) for i in repeated if keys.iloc[i] == first][:_SHOWN]
    rows = [int(i) if positions is None else int(positions[i]) for i in repeated]
    raise DuplicateIdError(
        f"{data.name}: id column {column!r} has ids that become the same id {under}, e.g. {same} -> "
        f"{first!r}, on {row_places(data.spec, rows, 's')}; ids must stay distinct"
    )


def run_psi(ctx: StepContext) -> StepResult:
    t0 = time.monotonic()
    params = ctx.param(PsiParams)
    peer = next(p for p in ctx.step.parties if p != ctx.party)
    data = ctx.own_data
    if params.spill:  # beyond memory: IDs into buckets on disk a chunk at a time, resumable per bucket
        if ctx.work_dir is None:
            raise JobSpecError(f"step {ctx.step.name!r}: spill = true needs a work directory (run it as a job step)")
        store = data.store
        chunks = store.iter_ids if store is not None else functools.partial(_frame_id_chunks, data.ids())
        result = psi_chunked(ctx.channel, chunks, data.n_rows, peer, ctx.work_dir, params, step=ctx.step.name)
    else:
        result = psi(ctx.channel, data.ids(), peer, params, progress=False, step=ctx.step.name)
    outputs = {
        "size": result.size, "rows": data.n_rows, "peer_size": result.peer_size,
        "reveal": params.reveal, "protocol": params.resolved_protocol, "timings": result.timings,
        "seconds": time.monotonic() - t0,
        "x25519": result.x25519,
    }
    if result.local_rows is None:
        return StepResult(outputs)
    with atomic_open(ctx.artefact_dir / ROWS_FILE, "wb") as f:
        np.save(f, result.local_rows, allow_pickle=False)
    return StepResult(outputs, [ROWS_FILE])


def _frame_id_chunks(ids: pd.Series, chunk_rows: int = 1 << 18) -> Iterator[pd.Series]:
    for a in range(0, len(ids), chunk_rows):
        yield ids.iloc[a : a + chunk_rows]


def preview_psi(step: StepSpec, spec: JobSpec, parsed: ParsedParams) -> list[PlannedDisclosure]:
    d = psi_disclosures
    reveal = parsed[PsiParams].reveal
    if parsed[PsiParams].resolved_protocol == "kkrt":
        k = kkrt_disclosures
        receiver = receiver_of(reveal, step.parties)
        sender = next(p for p in step.parties if p != receiver)
        kinds = [k.SET_SIZE, k.TABLE, k.BASE_OT, k.COLUMNS, k.OUTPUTS, k.INTERSECTION]
        if reveal == "both":
            kinds.append(k.INTERSECTION_BACK)
        resumed = (k.RESUMED,) if parsed[PsiParams].spill else ()  # only when a killed run is resumed
        return plan([*kinds, *resumed], step, spec, named={"the receiver": receiver, "the sender": sender},
                    data_dependent=resumed)
    if reveal == "size":
        return plan([d.SET_SIZE, d.BLINDED_IDS, d.DIGESTS_SORTED, d.INTERSECTION_SIZE], step, spec)
    learners = step.parties if reveal == "both" else (reveal,)
    return plan([d.SET_SIZE, d.BLINDED_IDS, d.DIGESTS_IN_ORDER, d.INTERSECTION], step, spec, learners=learners)


KIND = StepKind(
    "psi", run_psi, check_psi, params=(PsiParams,), protocols=(PROTOCOL, KKRT_PROTOCOL),
    summary="private set intersection of the parties' ID columns", check_data=check_psi_data, preview=preview_psi, streams=True,
)
