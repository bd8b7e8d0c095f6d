"""The label party's side of online scoring: one request per call, its margins from the partner's leaf sets."""

from __future__ import annotations

from typing import Any

import numpy as np

from misuan.errors import PeerTimeoutError, ProtocolError
from misuan.net.channel import Channel
from misuan.protocols.secureboost.messages import LeafSets
from misuan.protocols.secureboost.model import answers_of, leaf_values
from misuan.protocols.serving.disclosures import CONTRIBUTION, MODEL_PIN, QUERY
from misuan.protocols.serving.messages import STEP, Hello, ScoreReply, ScoreRequest
from misuan.protocols.serving.partner import check_pins

__all__ = ["BankModel", "ScoreResult"]


class ScoreResult:
    """Margins (log-odds of default) of a request's applicants, and which the partner knew."""

    def __init__(self, margin: np.ndarray, known: np.ndarray, leaves: dict[int, np.ndarray], sets: LeafSets) -> None:
        self.margin, self.known, self.leaves, self.sets = margin, known, leaves, sets

    @property
    def pd(self) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.margin))


class BankModel:
    """A label party's model part and its session with the one feature party it was trained with."""

    def __init__(self, model: dict[str, Any]) -> None:
        if model.get("role") != "label_party" or len(model.get("feature_parties", [])) != 1:
            raise ProtocolError("online scoring serves a label party's model part trained with one feature party")
        self.model = model
        self.trees = dict(enumerate(model["trees"]))
        self.partner = str(next(iter(model["feature_parties"])))
        self.names = list(model["feature_names"])
        self.seq = 0

    def pin(self, chan: Channel, *, model_id: str, own_part: str, peer_part: str, step: str = STEP) -> None:
        """Exchange and check the model pins (:func:`check_pins`) at the start of a session."""
        chan.send(self.partner, f"{step}/hello", Hello(model_id, own_part, peer_part))
        chan.disclose(step, MODEL_PIN, chan.party, self.partner, (), model_id=model_id)
        theirs = chan.recv(self.partner, f"{step}/hello", expect=Hello)
        chan.disclose(step, MODEL_PIN, self.partner, chan.party, (), model_id=theirs.model_id)
        check_pins(model_id, own_part, peer_part, theirs, self.partner)
        self.seq = 0

    def score(self, chan: Channel, ids: list[str], X_bank: np.ndarray, *, deadline_s: float, step: str = STEP) -> ScoreResult:
        """Ask the partner about ``ids`` and combine its leaf sets with this party's splits on ``X_bank``.
        A reply later than ``deadline_s`` raises :class:`PeerTimeoutError`; a late reply to an earlier
        request is skipped."""
        self.seq += 1
        chan.send(self.partner, f"{step}/request", ScoreRequest(self.seq, list(ids)))
        chan.disclose(step, QUERY, chan.party, self.partner, (len(ids),), seq=self.seq)
        while True:
            try:
                reply = chan.recv(self.partner, f"{step}/reply", expect=ScoreReply, timeout_s=deadline_s)
            except PeerTimeoutError as exc:
                raise PeerTimeoutError(f"{self.partner} did not answer within {deadline_s * 1000:.0f} ms") from exc
            if reply.seq == self.seq:
                break
            if reply.seq > self.seq:
                raise ProtocolError(f"{self.partner} answered request {reply.seq}, not yet asked")
        chan.disclose(step, CONTRIBUTION, self.partner, chan.party, (len(ids), len(reply.trees)), seq=reply.seq)
        known = np.asarray(reply.known, dtype=bool)
        if known.shape != (len(ids),):
            raise ProtocolError(f"{self.partner} answered for {known.shape} applicants, asked {len(ids)}")
        result = self.combine(LeafSets(reply.trees, reply.n_leaves, reply.masks), X_bank, chan.party)
        result.known = known
        return result

    def combine(self, sets: LeafSets, X_bank: np.ndarray, me: str) -> ScoreResult:
        """Margins from the partner's leaf sets ``sets`` and this party's splits on ``X_bank``."""
        X = np.asarray(X_bank, dtype=np.float64)
        answers = answers_of([(self.partner, sets)], self.trees, X, me)
        margin = np.full(X.shape[0], float(self.model["base_margin"]))
        for t, tree in self.trees.items():
            margin += leaf_values(tree, answers.leaves[t])
        return ScoreResult(margin, np.ones(X.shape[0], dtype=bool), answers.leaves, sets)
