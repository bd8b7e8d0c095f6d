"""Joint scoring with a scorecard in parts: the score, PD and reason codes of aligned rows, at the bank.

Each party holds the points table of its own features (``points[feature, bin]``, from
:func:`misuan.ml.scorecard.scorecard_from_bin_lr` with the same scaling and feature count). The
partner sends, per row, the sum of its points and its ``k`` features that fall furthest short of
their best bin (name index and points short); the bank adds its own points and merges the two lists
into the row's ``k`` principal reasons (points-below-max, ECOA/Reg B practice).

With several feature parties each sends its part; the bank adds them all and merges every list.

Leakage (recorded, ``PARTNER_POINTS`` and ``PARTNER_REASONS``): the bank learns each partner's part of
each row's score (which the total score and the bank's own part determine anyway) and, per row, up
to ``k`` of the partner's feature names with the points each falls short of its best bin (not the
bin: the bank does not hold the partner's points table). Nothing crosses from the bank.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from misuan.errors import DataError, MalformedMessageError
from misuan.net.channel import Channel
from misuan.protocols.vertical_lr import disclosures as D
from misuan.protocols.vertical_lr.messages import STEP, PartnerTable, PartScores

__all__ = [
    "TABLE_SHARING", "JointScores", "check_part_scores", "merge_reasons", "own_points", "pd_of_score",
    "receive_partner_table", "score_feature_party", "score_label_party", "send_partner_table",
]


# what a feature party may share of its points table with the label party, least first
TABLE_SHARING = ("none", "names", "labels", "points")


@dataclasses.dataclass
class JointScores:
    score: np.ndarray  # points, higher is safer
    pd: np.ndarray  # probability of default
    reasons: list[list[str]]  # per row, "party:feature", worst first


def own_points(points: np.ndarray, bins: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: the sum of its points, its ``k`` largest shortfalls' feature indices and amounts."""
    if bins.ndim != 2 or bins.shape[1] != points.shape[0]:
        raise DataError("bins are (rows, features) for the features of the points table")
    earned = np.take_along_axis(points.T, bins.astype(np.int64), axis=0)  # (rows, features)
    short = np.max(np.where(np.isfinite(points), points, -np.inf), axis=1)[None, :] - earned
    order = np.argsort(-short, axis=1, kind="stable")[:, :k]
    return earned.sum(axis=1), order.astype(np.int32), np.take_along_axis(short, order, axis=1)


def score_feature_party(chan: Channel, peer: str, names: list[str], points: np.ndarray, bins: np.ndarray,
                        k: int = 4, *, step: str = STEP) -> None:
    """The partner's side: its points per row and its ``k`` worst features per row, to the bank."""
    total, idx, short = own_points(points, bins, k)
    chan.send(peer, f"{step}/score", PartScores(list(names), total, idx, short))
    chan.disclose(step, D.PARTNER_POINTS, chan.party, peer, (len(total),))
    chan.disclose(step, D.PARTNER_REASONS, chan.party, peer, idx.shape)


def score_label_party(chan: Channel, feature_parties: str | Sequence[str], names: list[str], points: np.ndarray,
                      bins: np.ndarray, pdo: float, base_score: float, base_odds: float, k: int = 4, *,
                      step: str = STEP) -> JointScores:
    """The bank's side: the rows' scores, PDs and reasons (``bank:`` and ``<party>:`` feature names),
    with every feature party's part (one name, or several)."""
    total, idx, short = own_points(points, bins, k)
    n = len(total)
    parts = [(chan.party, list(names), idx, short)]
    for peer in [feature_parties] if isinstance(feature_parties, str) else list(feature_parties):
        msg = chan.recv(peer, f"{step}/score", expect=PartScores)
        check_part_scores(peer, msg.names, msg.points, msg.features, msg.short, n, k)
        chan.disclose(step, D.PARTNER_POINTS, peer, chan.party, (n,))
        chan.disclose(step, D.PARTNER_REASONS, peer, chan.party, msg.features.shape)
        total = total + msg.points
        parts.append((peer, list(msg.names), msg.features, msg.short))
    return JointScores(total, pd_of_score(total, pdo, base_score, base_odds), merge_reasons(parts, k))


def check_part_scores(peer: str, names: object, points: object, features: object, short: object, n: int, k: int) -> None:
    """A partner's part scores for ``n`` rows: finite points, at most ``k`` feature indices into ``names``."""
    if not (isinstance(points, np.ndarray) and points.shape == (n,) and points.dtype == np.float64
            and isinstance(features, np.ndarray) and features.dtype == np.int32 and features.ndim == 2
            and features.shape[0] == n and isinstance(short, np.ndarray) and short.shape == features.shape
            and short.dtype == np.float64 and features.shape[1] <= k
            and isinstance(names, list) and 0 < len(names) <= 10_000 and all(isinstance(x, str) for x in names)
            and (features.size == 0 or (features.min() >= 0 and features.max() < len(names)))
            and np.all(np.isfinite(points)) and np.all(np.isfinite(short))):
        raise MalformedMessageError(f"{peer} sent part scores of the wrong shape or values")


def pd_of_score(score: np.ndarray, pdo: float, base_score: float, base_odds: float) -> np.ndarray:
    """The PD a score stands for on the scale ``base_score`` at ``base_odds`` good:bad, ``pdo`` to double."""
    factor = pdo / math.log(2.0)
    offset = base_score - factor * math.log(base_odds)
    return np.asarray(1.0 / (1.0 + np.exp(-(offset - score) / factor)))


def merge_reasons(parts: Sequence[tuple[str, list[str], np.ndarray, np.ndarray]], k: int) -> list[list[str]]:
    """Per row, the ``k`` features (``party:feature``) furthest short of their best bin over every
    part: ``(party, its feature names, per row its worst features' indices, their shortfalls)``."""
    labels = [f"{party}:{x}" for party, names, _, _ in parts for x in names]
    starts = np.cumsum([0, *(len(names) for _, names, _, _ in parts)])
    cand_idx = np.hstack([i.astype(np.int64) + a for (_, _, i, _), a in zip(parts, starts, strict=False)])
    cand_short = np.hstack([sh for _, _, _, sh in parts])
    reasons = []
    for ids, amounts in zip(cand_idx, cand_short, strict=True):
        order = np.argsort(-amounts, kind="stable")
        reasons.append([labels[ids[j]] for j in order if amounts[j] > 1e-9][:k])
    return reasons


def send_partner_table(chan: Channel, peer: str, level: str, names: list[str], labels: list[list[str]],
                       points: np.ndarray, *, step: str = STEP) -> None:
    """The feature party shares its points table as far as ``level`` says (:data:`TABLE_SHARING`)."""
    if level not in TABLE_SHARING:
        raise DataError(f"partner_table must be one of {TABLE_SHARING}, not {level!r}")
    if level == "none":
        return
    rank = TABLE_SHARING.index(level)
    bins = [[i for i, x in enumerate(lab) if x != "(empty)"] for lab in labels]  # the table's padding left out
    shared_labels = [[lab[i] for i in b] for lab, b in zip(labels, bins, strict=True)] if rank >= 2 else []
    shared_points = [[float(row[i]) for i in b] for row, b in zip(points, bins, strict=True)] if rank >= 3 else []
    chan.send(peer, f"{step}/table", PartnerTable(list(names), shared_labels, shared_points))
    for kind, shared in ((D.TABLE_NAMES, True), (D.TABLE_LABELS, rank >= 2), (D.TABLE_POINTS, rank >= 3)):
        if shared:
            chan.disclose(step, kind, chan.party, peer, (len(names),))


def receive_partner_table(chan: Channel, peer: str, level: str, *, step: str = STEP) -> list[dict[str, object]]:
    """The label party's rows of the partner's table: ``feature``, and ``bin`` and ``points`` where shared."""
    if level == "none":
        return []
    rank = TABLE_SHARING.index(level)
    msg = chan.recv(peer, f"{step}/table", expect=PartnerTable)
    names, labels, points = msg.names, msg.labels, msg.points
    ok = (isinstance(names, list) and 0 < len(names) <= 10_000 and all(isinstance(x, str) for x in names)
          and isinstance(labels, list) and len(labels) == (len(names) if rank >= 2 else 0)
          and all(isinstance(lab, list) and 0 < len(lab) <= 1_000 and all(isinstance(x, str) for x in lab) for lab in labels)
          and isinstance(points, list) and len(points) == (len(names) if rank >= 3 else 0)
          and all(isinstance(row, list) and len(row) == len(lab) and all(isinstance(v, float) and math.isfinite(v) for v in row)
                  for row, lab in zip(points, labels, strict=False)))
    if not ok:
        raise MalformedMessageError(f"{peer} sent a points table that does not match partner_table = {level!r}")
    for kind, shared in ((D.TABLE_NAMES, True), (D.TABLE_LABELS, rank >= 2), (D.TABLE_POINTS, rank >= 3)):
        if shared:
            chan.disclose(step, kind, peer, chan.party, (len(names),))
    if rank < 2:
        return [{"feature": f} for f in names]
    return [{"feature": f, "bin": lab, **({"points": round(points[j][i], 1)} if rank >= 3 else {})}
            for j, f in enumerate(names) for i, lab in enumerate(labels[j])]
