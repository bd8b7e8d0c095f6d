"""Online joint scoring of a two-part scorecard (the parts :mod:`misuan.protocols.vertical_lr` trains).

Two parts only: the bank refuses to serve a part whose training counted more features than its own
and the partner's (a scorecard of several feature parties scores in batch).

Each node loads its own part (``scorecard.json``: its features' cut points and points per bin). Per
request the partner bins each applicant's features with its cut points (an applicant it does not
know: every feature in its missing bin, the documented missing-value path) and answers the sum of
its points and its :data:`REASONS` worst features with the points each falls short of its best bin
(``serving.PointsReply``); the bank adds its own points and merges the two reason lists with the
same functions as the batch joint scoring (:mod:`misuan.protocols.vertical_lr.scoring`), so the
online PD is the batch one.

Leakage per applicant (recorded, ``POINTS``): the bank learns the partner's part of the score (which
the score and the bank's own part determine anyway), whether the partner knows the ID, and up to
:data:`REASONS` of the partner's feature names with the points each falls short of its best bin, not
the bin. The partner learns which IDs were queried and when (``QUERY``), as with trees. Security
model: semi-honest.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from misuan.errors import MalformedMessageError, ProtocolError
from misuan.net.channel import Channel
from misuan.protocols.secureboost.binning import column_codes
from misuan.protocols.serving.bank import PinnedSession, checked_known
from misuan.protocols.serving.disclosures import POINTS
from misuan.protocols.serving.messages import STEP, PointsReply, ScoreRequest
from misuan.protocols.serving.partner import FeatureLookup, checked_request
from misuan.protocols.vertical_lr import check_part_scores, merge_reasons, own_points, pd_of_score

__all__ = ["FORMAT", "REASONS", "BankScorecard", "PartnerScorecard", "ScorecardPart", "ScorecardResult", "is_scorecard"]

FORMAT = "misuan.vertical_lr.scorecard"
REASONS = 8  # the partner's worst features per applicant: enough for four after protected attributes are left out


def is_scorecard(doc: dict[str, Any]) -> bool:
    return doc.get("format") == FORMAT


@dataclasses.dataclass(frozen=True)
class ScorecardPart:
    """One party's scorecard part, checked: cut points and points per bin of its own features."""

    party: str
    role: str
    features: list[str]
    cuts: list[np.ndarray]
    points: np.ndarray  # (features, most bins): a feature's bins in order, its missing bin last; NaN pads
    pdo: float
    base_score: float
    base_odds: float
    n_features: int  # every party's features in the training (its offset is spread over them all)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> ScorecardPart:
        """From a ``scorecard.json`` model part (:mod:`misuan.node.steps.vertical_lr` writes them)."""
        try:
            if not is_scorecard(doc):
                raise ValueError(f"format is {doc.get('format')!r}, not {FORMAT!r}")
            features = [str(f) for f in doc["features"]]
            cuts = [np.asarray(c, dtype=np.float64).reshape(-1) for c in doc["cuts"]]
            rows = [np.asarray(p, dtype=np.float64).reshape(-1) for p in doc["points"]]
            if not features or len(cuts) != len(features) or len(rows) != len(features):
                raise ValueError("features, cuts and points differ in length")
            for f, c, r in zip(features, cuts, rows, strict=True):
                if len(r) != len(c) + 2 or not np.all(np.isfinite(r)) or not np.all(np.diff(c) > 0):
                    raise ValueError(f"feature {f!r}: {len(r)} points for {len(c)} cut points (want one per bin and "
                                     "one for missing values, finite, cut points increasing)")
            scale = {k: float(doc["scaling"][k]) for k in ("pdo", "base_score", "base_odds")}
            if not (scale["pdo"] > 0 and scale["base_odds"] > 0 and math.isfinite(scale["base_score"])):
                raise ValueError(f"scaling {scale} is not a points scale")
            n_features = doc["n_features_all_parties"]
            if not isinstance(n_features, int) or n_features < len(features):
                raise ValueError(f"n_features_all_parties is {n_features!r}, fewer than its own {len(features)} features")
            points = np.full((len(rows), max(len(r) for r in rows)), np.nan)
            for j, r in enumerate(rows):
                points[j, : len(r)] = r
            return cls(str(doc["party"]), str(doc["role"]), features, cuts, points, **scale, n_features=n_features)
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(f"not a scorecard model part: {exc}") from None

    def bins(self, X: np.ndarray) -> np.ndarray:
        """Each row's bin per feature (NaN: the missing bin), as the training step binned its rows."""
        x = np.asarray(X, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.features):
            raise ProtocolError(f"scoring takes (rows, {len(self.features)}) feature values, not {x.shape}")
        return np.stack([column_codes(c, x[:, j]) for j, c in enumerate(self.cuts)], axis=1).astype(np.int64)


class PartnerScorecard:
    """The feature party's scorecard part, answering requests (:class:`~.partner.PartnerPart`)."""

    disclosure = POINTS

    def __init__(self, doc: dict[str, Any], label_party: str) -> None:
        self.part = ScorecardPart.from_doc(doc)
        if self.part.role != "feature_party":
            raise ProtocolError("the partner serves a feature party's scorecard part")
        self.names = self.part.features
        self.label_party = label_party

    def answer(self, req: ScoreRequest, lookup: FeatureLookup) -> PointsReply:
        X, known = lookup(checked_request(req))
        total, idx, short = own_points(self.part.points, self.part.bins(X), min(REASONS, len(self.names)))
        return PointsReply(req.seq, np.asarray(known, dtype=bool), list(self.names), total, idx, short)

    def disclosed_shape(self, reply: PointsReply) -> tuple[int, ...]:
        return tuple(reply.features.shape)


@dataclasses.dataclass
class ScorecardResult:
    """A request's applicants at the bank: score, PD, and the parts of their reasons."""

    score: np.ndarray
    pd: np.ndarray
    known: np.ndarray
    reply: PointsReply  # the partner's answer (its rows repeated for a fallback)
    idx: np.ndarray  # the bank's own worst features and shortfalls
    short: np.ndarray


class BankScorecard(PinnedSession):
    """The label party's scorecard part and its session with the partner (as :class:`~.bank.BankModel`)."""

    def __init__(self, doc: dict[str, Any], partner: str) -> None:
        self.part = ScorecardPart.from_doc(doc)
        if self.part.role != "label_party":
            raise ProtocolError("online scoring serves a label party's scorecard part")
        self.partner = partner
        self.names = self.part.features
        self.scaling = {"pdo": self.part.pdo, "base_score": self.part.base_score, "base_odds": self.part.base_odds}

    def score(self, chan: Channel, ids: list[str], X_bank: np.ndarray, *, deadline_s: float, step: str = STEP,
              after_reply: Any = None) -> ScorecardResult:
        """Ask the partner about ``ids``, add this party's points on ``X_bank`` (its raw feature values)."""
        reply = self.request(chan, ids, expect=PointsReply, deadline_s=deadline_s, step=step, after_reply=after_reply)
        n = len(ids)
        checked_known(reply.known, n, self.partner)
        check_part_scores(self.partner, reply.names, reply.points, reply.features, reply.short, n, REASONS)
        chan.disclose(step, POINTS, self.partner, chan.party, tuple(reply.features.shape), seq=reply.seq)
        return self.combine(reply, X_bank)

    def combine(self, reply: PointsReply, X_bank: np.ndarray) -> ScorecardResult:
        bins = self.part.bins(X_bank)
        if reply.points.shape[0] != bins.shape[0]:
            raise MalformedMessageError(f"{self.partner} sent points for {reply.points.shape[0]} rows, not {bins.shape[0]}")
        if len(self.names) + len(reply.names) != self.part.n_features:
            # a part of a scorecard trained with several feature parties: this partner's points and
            # this part's would miss the others' (and their share of the offset), so every score would be wrong
            raise ProtocolError(
                f"the scorecard was trained on {self.part.n_features} features; this part's {len(self.names)} and "
                f"{self.partner}'s {len(reply.names)} are not all of them: online scoring serves a scorecard of the "
                "bank and one feature party (score a scorecard of several in batch, with the job step or the estimator)"
            )
        total, idx, short = own_points(self.part.points, bins, min(REASONS, len(self.names)))
        score = total + reply.points
        return ScorecardResult(score, pd_of_score(score, **self.scaling), reply.known, reply, idx, short)

    def fallback(self, probe: ScorecardResult, X_bank: np.ndarray) -> ScorecardResult:
        """Every row scored with the partner's answer to the session's probe (every feature missing)."""
        n = np.asarray(X_bank).shape[0]
        r = probe.reply
        rows = PointsReply(r.seq, np.zeros(n, dtype=bool), r.names, np.repeat(r.points[:1], n),
                           np.repeat(r.features[:1], n, axis=0), np.repeat(r.short[:1], n, axis=0))
        return self.combine(rows, X_bank)

    def reasons(self, result: ScorecardResult, k: int) -> list[list[str]]:
        """Per row, the ``k`` features (``party:feature``) furthest short of their best bin, both parts merged."""
        r = result.reply
        return merge_reasons([(self.part.party, self.names, result.idx, result.short),
                              (self.partner, list(r.names), r.features, r.short)], k)
