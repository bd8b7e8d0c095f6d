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

from misuan.crypto.he import generate_keypair
from misuan.ml.outputs import iv_from_woe_result
from misuan.ml.woe import woe_iv_plaintext
from misuan.node.spec import JobSpec, StepSpec
from misuan.node.steps import alignment as al
from misuan.node.steps.context import StepContext, StepKind, StepResult
from misuan.params import check_params, param
from misuan.protocols.woe import PROTOCOL, WoeParams, woe_iv_feature_party, woe_iv_label_party

__all__ = ["KIND", "WoeStepParams", "check_woe", "run_woe"]


@dataclasses.dataclass(frozen=True)
class WoeStepParams:
    """What the step adds to the protocol's parameters; the label party's alone."""

    scheme: Literal["ou", "paillier"] = param("ou", "homomorphic scheme of the label party's key pair")
    key_bits: int = param(2048, "modulus size of the label party's key pair", ge=1024, le=16384)
    include_own: bool = param(True, "also WOE/IV of the label party's own features, in the clear on its side")

    def __post_init__(self) -> None:
        check_params(self, "woe")


def check_woe(step: StepSpec, spec: JobSpec) -> None:
    """What the params cannot say: the step runs between one label party and one feature party."""
    al.step_parties(step, spec)


def run_woe(ctx: StepContext) -> StepResult:
    t0 = time.monotonic()
    params, own = ctx.param(WoeParams), ctx.param(WoeStepParams)
    df = al.aligned(ctx)
    if ctx.role != al.LABEL_PARTY:
        cols = al.feature_columns(ctx)
        fres = woe_iv_feature_party(
            ctx.channel, al.peer(ctx), al.numeric_matrix(ctx, df, cols), params=params, step=ctx.step.name
        )
        return StepResult({"bins": fres.to_dict(), "seconds": time.monotonic() - t0})
    y = al.labels(ctx, df)
    keys = generate_keypair(own.scheme, own.key_bits)
    result = woe_iv_label_party(ctx.channel, al.peer(ctx), y, params=params, keypair=keys, step=ctx.step.name)
    features = iv_from_woe_result(result.to_dict(), al.peer(ctx))
    if own.include_own:
        # the label party's own features, in the clear on its own side: nothing is revealed
        mine = woe_iv_plaintext(al.numeric_matrix(ctx, df, al.feature_columns(ctx)), y, params)
        features += iv_from_woe_result(mine.to_dict(), ctx.party)
    pd.DataFrame(result.table()).to_csv(ctx.artefact_dir / "woe_table.csv", index=False)
    out = {"features": features, "n_rows": int(len(y)), "seconds": time.monotonic() - t0}
    return StepResult(out, ["woe_table.csv"])


KIND = StepKind(
    "woe", run_woe, check_woe, params=(WoeParams, WoeStepParams), protocols=(PROTOCOL,),
    summary="WOE/IV of the feature party's columns against the label party's labels",
)
