"""The label party's side of online scoring: one request per call, its margins from the partner's leaf sets."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import numpy as np

from misuan.errors import MalformedMessageError, PeerTimeoutError, ProtocolError
from misuan.net.channel import Channel
from misuan.protocols.secureboost.explain import leaf_contributions, reason_codes
from misuan.protocols.secureboost.messages import LeafSets
from misuan.protocols.serving.compiled import compile_forest, shapes_of_model_trees
from misuan.protocols.serving.disclosures import CONTRIBUTION, QUERY
from misuan.protocols.serving.messages import STEP, ScoreReply, ScoreRequest
from misuan.protocols.serving.partner import exchange_pins

_Reply = TypeVar("_Reply")

__all__ = ["BankModel", "BankPart", "PinnedSession", "ScoreResult", "checked_known"]


class BankPart(Protocol):
    """What a serving session needs of the label party's model part (trees or a scorecard)."""

    names: list[str]  # this party's features, in the order its rows give them
    partner: str

    def pin(self, chan: Channel, *, model_id: str, own_part: str, peer_part: str, step: str = ...,
            timeout_s: float | None = ...) -> None: ...

    def score(self, chan: Channel, ids: list[str], X_bank: np.ndarray, *, deadline_s: float, step: str = ...,
              after_reply: Callable[[Channel, int], None] | None = ...) -> Any: ...

    def fallback(self, probe: Any, X_bank: np.ndarray) -> Any: ...

    def reasons(self, result: Any, k: int) -> list[list[str]]: ...


class PinnedSession:
    """A label party's side of one session: the partner, the request count, the pins at its start."""

    partner: str
    seq: int = 0

    def pin(self, chan: Channel, *, model_id: str, own_part: str, peer_part: str, step: str = STEP,
            timeout_s: float | None = None) -> None:
        """Exchange and check the model pins (:func:`check_pins`) at the start of a session."""
        exchange_pins(chan, self.partner, model_id=model_id, own_part=own_part, peer_part=peer_part, step=step,
                      timeout_s=timeout_s)
        self.seq = 0

    def request(self, chan: Channel, ids: list[str], *, expect: type[_Reply], deadline_s: float, step: str = STEP,
                after_reply: Callable[[Channel, int], None] | None = None) -> _Reply:
        """Send the session's next request for ``ids`` and return its reply; a reply later than
        ``deadline_s`` raises :class:`PeerTimeoutError`, a late reply to an earlier request is skipped
        (``after_reply`` runs for every reply read, skipped or not, as the partner runs its own after
        sending it)."""
        self.seq += 1
        seq, partner = self.seq, self.partner
        end = time.monotonic() + deadline_s  # one deadline for the request, late replies skipped included
        chan.send(partner, f"{step}/request", ScoreRequest(seq, list(ids)))
        chan.disclose(step, QUERY, chan.party, partner, (len(ids),), seq=seq)
        while True:
            try:
                reply = chan.recv(partner, f"{step}/reply", expect=expect, timeout_s=max(0.0, end - time.monotonic()))
            except PeerTimeoutError as exc:
                raise PeerTimeoutError(f"{partner} did not answer within {deadline_s * 1000:.0f} ms") from exc
            got = int(reply.seq)
            if got > seq:
                raise ProtocolError(f"{partner} answered request {got}, not yet asked")
            if after_reply is not None:
                after_reply(chan, got)
            if got == seq:
                return reply


class ScoreResult:
    """Margins (log-odds of default) of a request's applicants, and which the partner knew."""

    def __init__(self, margin: np.ndarray, known: np.ndarray, sets: LeafSets, cols: np.ndarray) -> None:
        # cols: (rows, trees), each row's leaf per tree as a column of the compiled forest
        self.margin, self.known, self.sets, self.cols = margin, known, sets, cols

    @property
    def pd(self) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.margin))


class BankModel(PinnedSession):
    """A label party's model part and its session with the one feature party it was trained with."""

    def __init__(self, model: dict[str, Any]) -> None:
        if model.get("role") != "label_party" or len(model.get("feature_parties", [])) != 1:
            raise ProtocolError("online scoring serves a label party's model part trained with one feature party")
        self.model = model
        self.trees = dict(enumerate(model["trees"]))
        self.partner = str(next(iter(model["feature_parties"])))
        self.names = list(model["feature_names"])
        me = str(model["party"])
        splits = [(t, int(nd["id"]), int(nd["feature"]), nd["threshold"], bool(nd["default_left"]))
                  for t, tree in self.trees.items() for nd in tree["nodes"] if "leaf" not in nd and nd["party"] == me]
        self.forest = compile_forest(shapes_of_model_trees(model["trees"]), splits)
        values = {(t, nd["id"]): float(nd["leaf"]) for t, tree in self.trees.items() for nd in tree["nodes"] if "leaf" in nd}
        self.leaf_values = np.array([values[(t, int(i))] for t, ids in enumerate(self.forest.leaf_ids) for i in ids])
        per_leaf = leaf_contributions(model)
        self.saabas = np.array([per_leaf[t][int(i)] for t, ids in enumerate(self.forest.leaf_ids) for i in ids])
        self.reason_names = [f"{me}:{f}" for f in model["feature_names"]] + [
            f"{p}:{f}" for p, feats in model["feature_parties"].items() for f in feats]

    def score(self, chan: Channel, ids: list[str], X_bank: np.ndarray, *, deadline_s: float, step: str = STEP,
              after_reply: Callable[[Channel, int], None] | None = None) -> ScoreResult:
        """Ask the partner about ``ids`` and combine its leaf sets with this party's splits on ``X_bank``.
        A reply later than ``deadline_s`` raises :class:`PeerTimeoutError`; a late reply to an earlier
        request is skipped. ``after_reply(chan, seq)`` runs for every reply read, skipped or not (as
        the partner runs its own after sending it)."""
        reply = self.request(chan, ids, expect=ScoreReply, deadline_s=deadline_s, step=step, after_reply=after_reply)
        chan.disclose(step, CONTRIBUTION, self.partner, chan.party, (len(ids), len(reply.trees)), seq=reply.seq)
        known = checked_known(reply.known, len(ids), self.partner)
        for name, arr, kind in (("trees", reply.trees, "iu"), ("n_leaves", reply.n_leaves, "iu"), ("masks", reply.masks, "u")):
            if not isinstance(arr, np.ndarray) or arr.dtype.kind not in kind or arr.ndim != (2 if name == "masks" else 1):
                raise MalformedMessageError(f"{self.partner} sent a malformed {name} array")
        result = self.combine(LeafSets(reply.trees, reply.n_leaves, reply.masks), X_bank, chan.party)
        result.known = known
        return result

    def combine(self, sets: LeafSets, X_bank: np.ndarray, me: str) -> ScoreResult:
        """Margins from the partner's leaf sets ``sets`` and this party's splits on ``X_bank``."""
        X = np.asarray(X_bank, dtype=np.float64)
        f = self.forest
        if sets.trees.tolist() != list(range(len(f.n_leaves))) or sets.n_leaves.tolist() != f.n_leaves.tolist():
            raise ProtocolError(f"{self.partner} sent leaf sets of other trees or leaf counts than this model's")
        if sets.masks.shape[0] != X.shape[0]:
            raise ProtocolError(f"{self.partner} sent leaf sets for {sets.masks.shape[0]} rows, not {X.shape[0]}")
        cols = f.leaves_of(f.allowed(X) & f.unpack(sets.masks, self.partner), self.partner)
        margin = np.full(X.shape[0], float(self.model["base_margin"]))
        for t in range(cols.shape[1]):  # tree by tree, as the batch prediction sums them
            margin += self.leaf_values[cols[:, t]]
        return ScoreResult(margin, np.ones(X.shape[0], dtype=bool), sets, cols)

    def fallback(self, probe: ScoreResult, X_bank: np.ndarray) -> ScoreResult:
        """Every row scored with the partner's answer to the session's probe (an ID it does not know)."""
        m = probe.sets
        return self.combine(LeafSets(m.trees, m.n_leaves, np.repeat(m.masks[:1], X_bank.shape[0], axis=0)), X_bank,
                            str(self.model["party"]))

    def reasons(self, result: ScoreResult, k: int) -> list[list[str]]:
        """Per row, the ``k`` features (``party:feature``) that raise its risk most (Saabas contributions)."""
        return reason_codes(self.contributions(result), self.reason_names, k)

    def contributions(self, result: ScoreResult) -> np.ndarray:
        """Saabas contributions per row (``contribution_names`` columns), from the leaves alone."""
        phi = np.zeros((result.cols.shape[0], self.saabas.shape[1]))
        phi[:, -1] = float(self.model["base_margin"])
        for t in range(result.cols.shape[1]):
            phi += self.saabas[result.cols[:, t]]
        return phi


def checked_known(known: object, n: int, partner: str) -> np.ndarray:
    if not isinstance(known, np.ndarray) or known.dtype != np.bool_ or known.shape != (n,):
        raise MalformedMessageError(f"{partner} answered 'known' as {getattr(known, 'shape', '?')}, not {n} booleans")
    return known
