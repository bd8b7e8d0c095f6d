"""Job step ``vertical_lr``: the federated scorecard, logistic regression on both parties' bins
(:mod:`misuan.protocols.vertical_lr`) on the rows PSI aligned, less a hold-out scored jointly.

Spec::

    [[step]]
    kind = "vertical_lr"
    params = { n_bins = 10, c = 1.0, tol = 1e-4, test_fraction = 0.3 }

The step's ``parties`` are the label party and one or more feature parties. It aligns on the PSI
step (``reveal = "both"``) between the bank and each feature party, the last one before it; with
several feature parties the rows are the customers the bank shares with every one (the bank tells
each which of its PSI rows: :mod:`misuan.protocols.vertical_lr.common_rows`), the first feature
party listed leads, and the bank's ``partner_table`` and reasons cover them all.

Each party bins its own features into quantile bins (a missing-value bin besides) on the training
rows, trains, and writes ``scorecard.json``: its model part, the points table of its own features
(the offset spread over every party's features, the intercept over the bank's), the coefficients and
the bins' cut points, versioned; and ``scorecard_table.csv``, the table a validator reads of its own
features (feature, bin, rows, default rate where the party knows it: the bank for its own features,
the partner only with WOE encoding; points). The hold-out (the same seeded hash of customer IDs as SecureBoost's)
is scored jointly: the bank gets each held-out row's score, PD and reasons, and outputs the AUC and
KS; outputs: ``n_train``, ``n_test``, ``iterations``; the bank also ``auc``, ``ks``, ``scorecard``
(its own points table), ``partner_table`` (each feature party's features, rows naming their
``party``, with their bins' labels and points as far as ``partner_table`` shares them: by default
the names only), ``examples`` (a few
held-out customers' scores and reasons), and the held-out ``test_ids`` with their ``pd``.

``binning = "monotonic"`` bins both parties' features so that each one's default rate only rises or
only falls (the partner's through the WOE protocol: see :func:`_binned`). ``encoding = "woe"`` fits
one coefficient per feature on its bins' WOE instead of one per bin (both parties then learn the
event count of every partner bin: opt-in, previewed and recorded); the points stay per bin, and
each party's ``scorecard.json`` keeps its bins' WOE. With WOE encoding, ``penalty = "l1"`` selects
features by L1 instead of shrinking them by L2 (the partner then sees its own gradient and
coefficients during training: previewed and recorded).
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any, Literal

import numpy as np
import pandas as pd

from misuan.atomic_files import write_atomic
from misuan.errors import JobSpecError
from misuan.ml.metrics import ks_statistic, roc_auc
from misuan.ml.scorecard import Scorecard, scorecard_from_bin_lr
from misuan.ml.vertical_lr import scorecard_part
from misuan.ml.woe import woe_iv_feature
from misuan.node.data import CheckedDataset
from misuan.node.spec import JobSpec, StepSpec
from misuan.node.steps import alignment as al
from misuan.node.steps.context import ParsedParams, StepContext, StepKind, StepResult
from misuan.node.steps.preview import PlannedDisclosure, plan
from misuan.params import check_params, param
from misuan.protocols.secureboost.binning import QuantileBinner, binned_features, column_codes
from misuan.protocols.vertical_lr import (
    PROTOCOL,
    TABLE_SHARING,
    TrainingParams,
    common_rows,
    receive_common_rows,
    receive_partner_table,
    score_feature_party,
    score_label_party,
    send_common_rows,
    send_partner_table,
    train_feature_party,
    train_label_party,
)
from misuan.protocols.vertical_lr import disclosures as vlr_disclosures
from misuan.protocols.vertical_lr.encoding import per_feature
from misuan.protocols.woe import PROTOCOL as WOE_PROTOCOL
from misuan.protocols.woe import WoeParams, woe_iv_feature_party, woe_iv_label_party
from misuan.protocols.woe import disclosures as woe_disclosures

__all__ = ["KIND", "ScorecardStepParams"]

MODEL_FILE = "scorecard.json"
TABLE_FILE = "scorecard_table.csv"  # each party's points table of its own features
EXAMPLES = 5


@dataclasses.dataclass(frozen=True)
class ScorecardStepParams:
    """What the step adds to the optimiser's parameters: binning, hold-out and the points' scale."""

    n_bins: int = param(10, "quantile bins per feature, each party its own (a missing-value bin besides)", ge=2, le=64)
    test_fraction: float = param(0.3, "fraction of the shared customers held out and scored jointly", ge=0, lt=1)
    split_seed: int = param(0, "seed of the hash of customer IDs that picks the held-out customers")
    pdo: float = param(20.0, "points to double the odds", gt=0)
    base_score: float = param(600.0, "score at the base odds")
    base_odds: float = param(50.0, "good:bad odds at the base score", gt=0)
    reasons: int = param(4, "reason codes per applicant (points below each feature's best bin)", ge=1, le=10)
    binning: Literal["quantile", "monotonic"] = param(
        "quantile", "quantile bins, or monotonic: quantile pre-bins merged until each feature's default rate only rises "
        "or only falls (the partner's through the WOE protocol: the bank learns their pre-bins' counts)")
    partner_table: Literal["none", "names", "labels", "points"] = param(
        "names", "what the feature party shares of its points table with the bank: nothing, its features' names, "
        "and their bins' labels, and each bin's points")

    def __post_init__(self) -> None:
        check_params(self, "vertical_lr")


def check_vertical_lr(step: StepSpec, spec: JobSpec, parsed: ParsedParams) -> None:
    """A PSI step (``reveal = "both"``) between the bank and each feature party before this one, all
    normalising IDs alike: the hold-out is a hash of the normalised IDs, so every party must key it alike."""
    label, partners = al.vertical_parties(step, spec)
    psi = [al.psi_step_between(step, spec, label, p) for p in partners]
    norms = [al.psi_params(s, spec).normalize for s in psi]
    if any(n != norms[0] for n in norms):
        raise JobSpecError(f"step {step.name!r} aligns on PSI steps {[s.name for s in psi]} with different "
                           "`normalize` params; give them the same normalisation")


def check_vertical_lr_data(step: StepSpec, spec: JobSpec, parsed: ParsedParams, data: CheckedDataset) -> None:
    al.check_credit_data(step, spec, data, features=True, both_classes=True)


def _labels(cuts: np.ndarray) -> list[str]:
    edges = [f"{c:g}" for c in cuts]
    lows, highs = ["-inf", *edges], [*edges, "inf"]
    return [f"[{lo}, {hi})" for lo, hi in zip(lows, highs, strict=True)] + ["missing"]


def _right_closed(cuts: np.ndarray) -> list[str]:
    edges = [f"{c:g}" for c in cuts]
    lows, highs = ["-inf", *edges], [*edges, "inf"]
    return [f"({lo}, {hi}]" if hi != "inf" else f"({lo}, inf)" for lo, hi in zip(lows, highs, strict=True)] + ["missing"]


def _write_model(ctx: StepContext, card: Scorecard, coef: list[np.ndarray], intercept: float | None,
                 cuts: list[np.ndarray], n_features: int, woe: list[np.ndarray] | None) -> None:
    part = scorecard_part(ctx.party, ctx.role, card, coef, intercept, cuts, n_features, woe)
    write_atomic(ctx.artefact_dir / MODEL_FILE, json.dumps(part, indent=1, allow_nan=False))


def _per_bin(codes: np.ndarray, n_bins: list[int], weights: np.ndarray | None = None) -> list[np.ndarray]:
    """Each feature's rows (or, with ``weights``, their sum: the events) per bin."""
    return [np.bincount(codes[:, j], weights=weights, minlength=b) for j, b in enumerate(n_bins)]


def _write_table(ctx: StepContext, table: list[dict[str, Any]]) -> None:
    write_atomic(ctx.artefact_dir / TABLE_FILE, pd.DataFrame(table).to_csv(index=False))


def _binned(ctx: StepContext, fit_rows: Any, own: ScorecardStepParams, label: str, partners: list[str]
            ) -> tuple[QuantileBinner, np.ndarray, list[str], list[list[str]]]:
    """Each party's bins of its features on the training rows: quantile bins, or monotone bins.

    Monotone: ``monotonic`` binning of :mod:`misuan.protocols.woe` (quantile pre-bins pooled until the
    default rate only rises or only falls, then merged down to ``n_bins``): the partner's features by
    the WOE protocol (the bank learns the pre-bins' row and default counts, the partner the merges),
    the bank's on its own labels. WOE's bins are closed on the right; each cut moves up by one ulp so
    that the left-closed bins of the scorecard (:func:`column_codes`) hold the same values, and the
    labels keep WOE's right-closed form. Returns the binner, the codes, the names and the labels."""
    if own.binning == "quantile":
        binner, codes, names = binned_features(fit_rows.features(), own.n_bins)
        return binner, codes, names, [_labels(c) for c in binner.cuts]
    frame = fit_rows.feature_frame()
    names = [str(c) for c in frame.columns]
    params = WoeParams(method="monotonic", n_bins=own.n_bins, n_prebins=max(own.n_bins, 50), share_edges=False)
    if ctx.role == al.LABEL_PARTY:
        y = fit_rows.labels()
        for partner in partners:
            woe_iv_label_party(ctx.channel, partner, y, params=params, step=ctx.step.name)
        bins = [woe_iv_feature(nm, frame[nm].to_numpy(dtype=np.float64), y, params)[0] for nm in names]
    else:
        fres = woe_iv_feature_party(ctx.channel, label, frame, params=params, step=ctx.step.name)
        bins = [fres.bins[nm] for nm in names]
    binner = QuantileBinner(own.n_bins, [np.nextafter(b.cuts, np.inf) for b in bins])
    return binner, binner.transform(frame.to_numpy(dtype=np.float64)), names, [_right_closed(b.cuts) for b in bins]


def _training_rows(ctx: StepContext, label: str, partners: list[str]) -> tuple[al.AlignedRows, str]:
    """This party's rows the training takes, in the order every party takes them, and the PSI step
    whose ID normalisation keys the hold-out: with one feature party its PSI's rows as they are;
    with several, the customers the bank shares with every one (:mod:`~misuan.protocols.vertical_lr.common_rows`)."""
    psi_steps = {p: al.psi_step_between(ctx.step, ctx.spec, label, p).name for p in partners}  # checked alike
    if len(partners) == 1:
        return al.aligned_rows(ctx, psi_steps[partners[0]]), psi_steps[partners[0]]
    if ctx.role == al.LABEL_PARTY:
        per_psi = [al.aligned_rows(ctx, psi_steps[p]) for p in partners]
        common, positions = common_rows([r.rows for r in per_psi])
        for partner, pos in zip(partners, positions, strict=True):
            send_common_rows(ctx.channel, partner, pos, step=ctx.step.name)
        return al.AlignedRows(per_psi[0].data, common), psi_steps[partners[0]]
    psi_rows = al.aligned_rows(ctx, psi_steps[ctx.party])
    return psi_rows.take(receive_common_rows(ctx.channel, label, len(psi_rows), step=ctx.step.name)), psi_steps[ctx.party]


def run_vertical_lr(ctx: StepContext) -> StepResult:
    t0 = time.monotonic()
    train_params, own = ctx.param(TrainingParams), ctx.param(ScorecardStepParams)
    label, partners = al.vertical_parties(ctx.step, ctx.spec)
    rows, psi_step = _training_rows(ctx, label, partners)
    ids = al.normalised_ids(ctx, rows.ids(), psi_step)
    train, test = al.holdout_split(ids, own.test_fraction, own.split_seed)
    fit_rows, test_rows = rows.take(train), rows.take(test)
    binner, codes, names, labels = _binned(ctx, fit_rows, own, label, partners)
    test_x = np.asarray(test_rows.feature_frame().to_numpy(dtype=np.float64)) if len(test) else np.zeros((0, len(names)))
    test_codes = np.stack([column_codes(c, test_x[:, j]) for j, c in enumerate(binner.cuts)], axis=1) \
        if len(test) else np.zeros((0, len(names)), dtype=np.int64)
    n_bins = binner.n_bins
    step = ctx.step.name
    ctx.progress(f"[{ctx.party}] vertical LR: {len(names)} features in {sum(n_bins)} bins, {len(train)} rows "
                 f"({len(test)} held out)")
    scale = {"pdo": own.pdo, "base_score": own.base_score, "base_odds": own.base_odds}
    out: dict[str, Any] = {"n_train": int(len(train)), "n_test": int(len(test))}
    if ctx.role == al.LABEL_PARTY:
        y = fit_rows.labels()
        bank = train_label_party(ctx.channel, partners, codes, n_bins, y, train_params, step=step)
        coef = per_feature(bank.coef[1:], n_bins)
        n_all = bank.n_features
        card = scorecard_from_bin_lr(names, labels, coef, float(bank.coef[0]), n_all, **scale)
        _write_model(ctx, card, coef, float(bank.coef[0]), binner.cuts, n_all, bank.woe)
        table = card.table(_per_bin(codes, n_bins), _per_bin(codes, n_bins, y), bank.woe)
        _write_table(ctx, table)
        out.update(iterations=bank.iterations, losses=bank.losses, scorecard=table,
                   partner_table=[{"party": p, **row} for p in partners
                                  for row in receive_partner_table(ctx.channel, p, own.partner_table, step=step)])
        if len(test):
            joint = score_label_party(ctx.channel, partners, names, card.points, test_codes, own.pdo, own.base_score,
                                      own.base_odds, own.reasons, step=step)
            y_test = test_rows.labels()
            out.update(auc=roc_auc(y_test, joint.pd), ks=ks_statistic(y_test, joint.pd),
                       test_ids=rows.ids().astype(str).iloc[test].tolist(), pd=[float(v) for v in joint.pd],
                       examples=[{"score": round(float(joint.score[i]), 1), "pd": float(joint.pd[i]),
                                  "reasons": joint.reasons[i]} for i in range(min(EXAMPLES, len(test)))])
    else:
        partner = train_feature_party(ctx.channel, label, codes, n_bins, train_params, feature_parties=partners, step=step)
        coef = per_feature(partner.coef, n_bins)
        n_all = partner.n_features
        card = scorecard_from_bin_lr(names, labels, coef, 0.0, n_all, **scale)
        _write_model(ctx, card, coef, None, binner.cuts, n_all, partner.woe)
        # its own table: rows per bin, and default rates only where WOE encoding told it its bins' events
        events = None if partner.events is None else per_feature(partner.events, n_bins)
        _write_table(ctx, card.table(_per_bin(codes, n_bins), events, partner.woe))
        out.update(iterations=partner.iterations)
        send_partner_table(ctx.channel, label, own.partner_table, names, card.labels, card.points, step=step)
        if len(test):
            score_feature_party(ctx.channel, label, names, card.points, test_codes, own.reasons, step=step)
    out["seconds"] = time.monotonic() - t0
    return StepResult(out, [MODEL_FILE, TABLE_FILE])


def preview_vertical_lr(step: StepSpec, spec: JobSpec, parsed: ParsedParams) -> list[PlannedDisclosure]:
    d = vlr_disclosures
    own = parsed[ScorecardStepParams]
    table = (d.TABLE_NAMES, d.TABLE_LABELS, d.TABLE_POINTS)
    label, partners = al.vertical_parties(step, spec)
    kinds = [k for k in d.DISCLOSURES if k not in (d.PARTNER_POINTS, d.PARTNER_REASONS, *table, *d.MULTI_PARTY)]
    kinds += table[: TABLE_SHARING.index(own.partner_table)]
    if own.test_fraction > 0:
        kinds += [d.PARTNER_POINTS, d.PARTNER_REASONS]
    if parsed[TrainingParams].penalty != "l1":
        kinds = [k for k in kinds if k is not d.OWN_BLOCK_GRADIENT]
    if parsed[TrainingParams].encoding != "woe":
        kinds = [k for k in kinds if k not in (d.WOE_LABELS, d.WOE_EVENTS, d.WOE_ROWS, d.WOE_TABLE)]
    if own.binning == "monotonic":  # the partner's monotone bins by the WOE protocol
        kinds += [woe_disclosures.ENCRYPTED_LABELS, woe_disclosures.PREBIN_COUNTS, woe_disclosures.MERGE_BOUNDARIES]
    named = {d.LEAD: partners[0]}
    # the bank's pieces run with each feature party; between feature parties only the lead's entries pass
    with_bank = [x for x in plan(kinds, step, spec, named=named) if label in (x.discloser, x.recipient)]
    return with_bank + (plan(d.MULTI_PARTY, step, spec, named=named) if len(partners) > 1 else [])


KIND = StepKind(
    "vertical_lr", run_vertical_lr, check_vertical_lr, params=(TrainingParams, ScorecardStepParams),
    protocols=(PROTOCOL, WOE_PROTOCOL),
    summary="the federated scorecard: vertical logistic regression on the bins of the bank and its partners",
    check_data=check_vertical_lr_data, preview=preview_vertical_lr,
)
