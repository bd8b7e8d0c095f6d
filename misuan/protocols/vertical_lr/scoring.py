"""Joint scoring with a two-part scorecard: the score, PD and reason codes of aligned rows, at the bank.

Each party holds the points table of its own features (``points[feature, bin]``, from
:func:`misuan.ml.scorecard.scorecard_from_bin_lr` with the same scaling and feature count). The
partner sends, per row, the sum of its points and its ``k`` features that fall furthest short of
their best bin (name index and points short); the bank adds its own points and merges the two lists
into the row's ``k`` principal reasons (points-below-max, ECOA/Reg B practice).

Leakage (recorded, ``PARTNER_POINTS`` and ``PARTNER_REASONS``): the bank learns the partner's part of
each row's score (which the total score and the bank's own part determine anyway) and, per row, up
to ``k`` of the partner's feature names with the points each falls short of its best bin (not the
bin: the bank does not hold the partner's points table). Nothing crosses from the bank.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from misuan.errors import DataError, MalformedMessageError
from misuan.net.channel import Channel
from misuan.protocols.vertical_lr import disclosures as D
from misuan.protocols.vertical_lr.messages import STEP, PartScores

__all__ = ["JointScores", "check_part_scores", "merge_reasons", "own_points", "pd_of_score", "score_feature_party", "score_label_party"]


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


def score_label_party(chan: Channel, peer: str, names: list[str], points: np.ndarray, bins: np.ndarray,
                      pdo: float, base_score: float, base_odds: float, k: int = 4, *, step: str = STEP) -> JointScores:
    """The bank's side: the rows' scores, PDs and reasons (``bank:`` and ``<peer>:`` feature names)."""
    total, idx, short = own_points(points, bins, k)
    msg = chan.recv(peer, f"{step}/score", expect=PartScores)
    n = len(total)
    check_part_scores(peer, msg.names, msg.points, msg.features, msg.short, n, k)
    chan.disclose(step, D.PARTNER_POINTS, peer, chan.party, (n,))
    chan.disclose(step, D.PARTNER_REASONS, peer, chan.party, msg.features.shape)
    score = total + msg.points
    reasons = merge_reasons(chan.party, names, idx, short, peer, list(msg.names), msg.features, msg.short, k)
    return JointScores(score, pd_of_score(score, pdo, base_score, base_odds), reasons)


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


def merge_reasons(me: str, names: list[str], idx: np.ndarray, short: np.ndarray, peer: str, peer_names: list[str],
                  peer_idx: np.ndarray, peer_short: np.ndarray, k: int) -> list[list[str]]:
    """Per row, the ``k`` features (``party:feature``) furthest short of their best bin over both parts."""
    labels = [f"{me}:{x}" for x in names] + [f"{peer}:{x}" for x in peer_names]
    cand_idx = np.hstack([idx, peer_idx.astype(np.int64) + len(names)])
    cand_short = np.hstack([short, peer_short])
    reasons = []
    for ids, amounts in zip(cand_idx, cand_short, strict=True):
        order = np.argsort(-amounts, kind="stable")
        reasons.append([labels[ids[j]] for j in order if amounts[j] > 1e-9][:k])
    return reasons
