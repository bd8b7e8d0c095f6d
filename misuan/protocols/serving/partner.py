"""The feature party's side of online scoring: answer each request from its feature store."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from misuan.errors import MalformedMessageError, ModelMismatchError, PeerTimeoutError, ProtocolError
from misuan.net.channel import Channel
from misuan.net.disclosure import DisclosureKind
from misuan.protocols.secureboost.model import trees_of_shape
from misuan.protocols.serving.compiled import compile_forest
from misuan.protocols.serving.disclosures import CONTRIBUTION, MODEL_PIN, QUERY
from misuan.protocols.serving.messages import MAX_BATCH, MAX_ID_CHARS, STEP, Hello, ScoreReply, ScoreRequest

__all__ = [
    "FeatureLookup", "PartnerModel", "PartnerPart", "check_pins", "checked_request", "exchange_pins", "serve_partner",
]

# normalised IDs -> (their rows of this party's features in the model's column order, NaN where
# unknown, and which IDs are known)
FeatureLookup = Callable[[list[str]], tuple[np.ndarray, np.ndarray]]


class PartnerPart(Protocol):
    """What :func:`serve_partner` needs of a feature party's model part (trees or a scorecard)."""

    names: list[str]  # this party's features, in the order its feature lookup returns them
    label_party: str
    disclosure: DisclosureKind  # what each reply tells the bank

    def answer(self, req: ScoreRequest, lookup: FeatureLookup) -> Any: ...

    def disclosed_shape(self, reply: Any) -> tuple[int, ...]: ...


def checked_request(req: ScoreRequest) -> list[str]:
    if not 0 < len(req.ids) <= MAX_BATCH or not all(isinstance(i, str) and 0 < len(i) <= MAX_ID_CHARS for i in req.ids):
        raise MalformedMessageError(f"a scoring request must carry 1 to {MAX_BATCH} IDs of up to {MAX_ID_CHARS} characters")
    return list(req.ids)


class PartnerModel:
    """A feature party's model part (``misuan.ml.secureboost`` JSON's ``model``), compiled to answer fast."""

    disclosure = CONTRIBUTION

    def __init__(self, model: dict[str, Any]) -> None:
        if model.get("role") != "feature_party":
            raise ProtocolError("the partner serves a feature party's model part")
        self.model = model
        self.names = list(model["feature_names"])
        n_trees = int(model["n_trees"])
        shapes = trees_of_shape(np.array(model["shape"], dtype=np.int32).reshape(-1, 4), range(n_trees))
        col = {nm: j for j, nm in enumerate(self.names)}
        splits = [(int(sp["tree"]), int(sp["node"]), col[sp["feature"]], sp["threshold"], bool(sp["default_left"]))
                  for sp in model["splits"]]
        self.forest = compile_forest([shapes[t] for t in range(n_trees)], splits)
        self.label_party = str(model["label_party"])

    def answer(self, req: ScoreRequest, lookup: FeatureLookup) -> ScoreReply:
        """The leaf sets of the request's applicants; an unknown applicant is answered as all-missing
        (its trees' default directions), the documented missing-value path."""
        X, known = lookup(checked_request(req))
        f = self.forest
        masks = f.pack(f.allowed(np.asarray(X, dtype=np.float64)))
        return ScoreReply(req.seq, known.astype(bool), np.arange(len(f.n_leaves), dtype=np.int32),
                          f.n_leaves.astype(np.int32), masks)

    def disclosed_shape(self, reply: ScoreReply) -> tuple[int, ...]:
        return (len(reply.known), len(reply.trees))


def serve_partner(
    chan: Channel, model: PartnerPart, lookup: FeatureLookup, *, model_id: str, own_part: str, peer_part: str,
    stop: Callable[[], bool] = lambda: False, poll_s: float = 1.0, step: str = STEP,
    after_reply: Callable[[Channel, int], None] | None = None, hello_timeout_s: float | None = None,
) -> int:
    """Pin the model with the label party, then answer requests until ``stop()`` or the channel
    closes; returns the number of requests answered. ``after_reply(chan, seq)`` runs after each reply
    (the node exchanges ledger anchors there, at sequence numbers both sides know)."""
    bank = model.label_party
    exchange_pins(chan, bank, model_id=model_id, own_part=own_part, peer_part=peer_part, step=step,
                  timeout_s=hello_timeout_s)
    answered = 0
    while not stop():
        try:
            req = chan.recv(bank, f"{step}/request", expect=ScoreRequest, timeout_s=poll_s)
        except PeerTimeoutError:
            continue
        chan.disclose(step, QUERY, bank, chan.party, (len(req.ids),), seq=req.seq)
        reply = model.answer(req, lookup)
        chan.send(bank, f"{step}/reply", reply)
        chan.disclose(step, model.disclosure, chan.party, bank, model.disclosed_shape(reply), seq=req.seq)
        answered += 1
        if after_reply is not None:
            after_reply(chan, req.seq)
    return answered


def exchange_pins(chan: Channel, peer: str, *, model_id: str, own_part: str, peer_part: str, step: str = STEP,
                  timeout_s: float | None = None) -> None:
    """Send this side's pin, receive the peer's (both recorded) and check them (:func:`check_pins`)."""
    chan.send(peer, f"{step}/hello", Hello(model_id, own_part, peer_part))
    chan.disclose(step, MODEL_PIN, chan.party, peer, (), model_id=model_id)
    theirs = chan.recv(peer, f"{step}/hello", expect=Hello, timeout_s=timeout_s)
    chan.disclose(step, MODEL_PIN, peer, chan.party, (), model_id=theirs.model_id)
    check_pins(model_id, own_part, peer_part, theirs, peer)


def check_pins(model_id: str, own_part: str, peer_part: str, theirs: Hello, peer: str) -> None:
    """Refuse to serve unless both sides run the same model: one line naming both hashes."""
    if theirs.model_id != model_id or theirs.own_part != peer_part or theirs.peer_part != own_part:
        raise ModelMismatchError(
            f"model mismatch with {peer}: this side serves {model_id!r} with parts {own_part[:16]}... (own) and "
            f"{peer_part[:16]}... (expected of {peer}); {peer} serves {theirs.model_id!r} with {theirs.own_part[:16]}... "
            f"(own) and expects {theirs.peer_part[:16]}...: deploy the same model version on both nodes"
        )
