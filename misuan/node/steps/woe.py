"""Job step ``woe``: WOE/IV of the feature party's columns against the label party's labels
(:mod:`misuan.protocols.woe`), on the rows PSI aligned (``rows.npy``, written with ``reveal = "both"``).

Spec::

    [[step]]
    kind = "woe"
    params = { n_bins = 5, method = "tree", min_bin_size = 20, include_own = true }

The params table is flat: :class:`~misuan.protocols.woe.WoeParams` (the protocol's, both parties
the same) and :class:`WoeStepParams` (the label party's key and its own features). Output: the label
party gets the IV of every feature (``features``) and writes ``woe_table.csv`` (one row per bin);
the feature party gets its final bins (``bins``).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Literal

import pandas as pd

from misuan.crypto.he import MAX_BITS, MIN_BITS, generate_keypair
from misuan.ml.outputs import iv_from_woe_result
from misuan.ml.woe import woe_iv_plaintext
from misuan.node.data import CheckedDataset
from misuan.node.spec import JobSpec, StepSpec
from misuan.node.steps import alignment as al
from misuan.node.steps.context import ParsedParams, StepContext, StepKind, StepResult, param_error
from misuan.node.steps.preview import PlannedDisclosure, plan
from misuan.params import check_params, param
from misuan.protocols.woe import PROTOCOL, WoeParams, woe_iv_feature_party, woe_iv_label_party
from misuan.protocols.woe import disclosures as woe_disclosures
from misuan.protocols.woe.params import SUPERVISED

__all__ = ["KIND", "WoeStepParams", "check_woe", "check_woe_data", "run_woe"]


@dataclasses.dataclass(frozen=True)
class WoeStepParams:
    """What the step adds to the protocol's parameters; the label party's alone."""

    scheme: Literal["ou", "paillier"] = param("ou", "homomorphic scheme of the label party's key pair")
    key_bits: int = param(2048, "modulus size of the label party's key pair", ge=MIN_BITS, le=MAX_BITS)
    include_own: bool = param(True, "also WOE/IV of the label party's own features, in the clear on its side")

    def __post_init__(self) -> None:
        check_params(self, "woe")


def check_woe(step: StepSpec, spec: JobSpec, parsed: ParsedParams) -> None:
    """What the params cannot say alone: one label party and one feature party, and a key the
    feature party accepts (``key_bits`` of at least ``min_key_bits``)."""
    al.step_parties(step, spec)
    own, protocol = parsed[WoeStepParams], parsed[WoeParams]
    if own.key_bits < protocol.min_key_bits:
        raise param_error(
            step, spec, "key_bits", f"must be at least min_key_bits ({protocol.min_key_bits}), not {own.key_bits}"
        )


def check_woe_data(step: StepSpec, spec: JobSpec, parsed: ParsedParams, data: CheckedDataset) -> None:
    """Numeric features where the party bins them (the label party only with ``include_own``), and
    both classes among the label party's labels."""
    is_label = data.spec.label_column is not None
    al.check_credit_data(
        step, spec, data, features=not is_label or parsed[WoeStepParams].include_own, both_classes=True
    )


def run_woe(ctx: StepContext) -> StepResult:
    t0 = time.monotonic()
    params, own = ctx.param(WoeParams), ctx.param(WoeStepParams)
    rows = al.aligned_rows(ctx)
    if ctx.role != al.LABEL_PARTY:
        fres = woe_iv_feature_party(ctx.channel, al.peer(ctx), rows.features(), params=params, step=ctx.step.name)
        return StepResult({"bins": fres.to_dict(), "seconds": time.monotonic() - t0})
    y = rows.labels()
    keys = generate_keypair(own.scheme, own.key_bits)
    result = woe_iv_label_party(ctx.channel, al.peer(ctx), y, params=params, keypair=keys, step=ctx.step.name)
    features = iv_from_woe_result(result.to_dict(), al.peer(ctx))
    if own.include_own:
        # the label party's own features, in the clear on its own side: nothing is revealed
        mine = woe_iv_plaintext(rows.features(), y, params)
        features += iv_from_woe_result(mine.to_dict(), ctx.party)
    pd.DataFrame(result.table()).to_csv(ctx.artefact_dir / "woe_table.csv", index=False)
    out = {"features": features, "n_rows": int(len(y)), "seconds": time.monotonic() - t0}
    return StepResult(out, ["woe_table.csv"])


def preview_woe(step: StepSpec, spec: JobSpec, parsed: ParsedParams) -> list[PlannedDisclosure]:
    d, p = woe_disclosures, parsed[WoeParams]
    feature_party = next(spec.party(n) for n in step.parties if spec.party(n).role == "feature_party")
    columns = feature_party.dataset.features if feature_party.dataset is not None else "all"
    if columns == "all":  # the columns are the partner's to know: every method the params name may be in use
        methods = {p.method, *p.methods.values()}
    else:
        methods = {p.methods.get(c, p.method) for c in columns}
    kinds = [d.ENCRYPTED_LABELS]
    if methods - set(SUPERVISED):
        kinds.append(d.BIN_COUNTS)
    if methods & set(SUPERVISED):
        kinds += [d.PREBIN_COUNTS, d.MERGE_BOUNDARIES]
    if p.share_edges:
        kinds.append(d.BIN_EDGES)
    if p.share_iv:
        kinds.append(d.IV_PER_FEATURE)
    return plan(kinds, step, spec)


KIND = StepKind(
    "woe", run_woe, check_woe, params=(WoeParams, WoeStepParams), protocols=(PROTOCOL,),
    summary="WOE/IV of the feature party's columns against the label party's labels", check_data=check_woe_data,
    preview=preview_woe, streams=True,
)
