"""A serving node: its feature store, ledger, gRPC endpoint and session, from a :class:`ServeConfig`.

:func:`start_partner` runs the feature party's service in a thread; :func:`start_bank` returns the
bank's :class:`BankService`, which the HTTP app (:mod:`misuan.serving.app`) calls. Both record every
request in their ledger through a :class:`~misuan.audit.ledger.BatchingRecorder` (one transaction per
batch of rows, not per query) and close it on :meth:`close`.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import random
import threading
import time
from typing import Any

import numpy as np

from misuan.audit.ledger import BatchingRecorder, Ledger
from misuan.crypto.anchor import AnchorSigner
from misuan.errors import ConfigError, DataError
from misuan.net.channel import Channel
from misuan.net.grpc_channel import open_grpc_channel
from misuan.net.grpc_server import PartyServer
from misuan.node.anchoring import exchange_anchors
from misuan.protocols.psi import coerce_ids, normalize_ids
from misuan.protocols.serving import BankScorecard, bank_part, partner_part
from misuan.serving.config import ServeConfig, model_sha256
from misuan.serving.decisions import DecisionEngine
from misuan.serving.feature_store import FeatureStore, build_feature_store
from misuan.serving.session import BankSession, PartnerService, Pins

__all__ = ["BankService", "PartnerNode", "start_bank", "start_partner"]


def _store(cfg: ServeConfig, features: list[str]) -> FeatureStore:
    """The node's feature store, rebuilt when its source CSV is newer."""
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    src = cfg.features_csv
    if not src.is_file():
        raise ConfigError(f"{cfg.path}: features.csv: {src} does not exist")
    if not cfg.store_path.is_file() or cfg.store_path.stat().st_mtime < src.stat().st_mtime:
        build_feature_store(src, cfg.store_path, id_column=cfg.id_column, features=features, normalization=cfg.normalization)
    return FeatureStore(cfg.store_path, features)


@dataclasses.dataclass
class _Wire:
    """The node's gRPC endpoint (one server for the node's life) and its ledger."""

    cfg: ServeConfig
    ledger: Ledger
    recorder: BatchingRecorder
    server: PartyServer

    @classmethod
    def open(cls, cfg: ServeConfig) -> _Wire:
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        ledger = Ledger(cfg.ledger_path, party=cfg.party)
        return cls(cfg, ledger, BatchingRecorder(ledger), PartyServer(cfg.party, cfg.tls, listen=cfg.listen))

    def opener(self, connect_timeout_s: float) -> Any:
        cfg = self.cfg

        def open_channel() -> Channel:
            return open_grpc_channel(cfg.party, {cfg.party: cfg.listen, cfg.peer: cfg.peer_address}, f"serve-{cfg.model_id}",
                                     cfg.tls, recorder=self.recorder, timeout_s=5.0, connect_timeout_s=connect_timeout_s,
                                     server=self.server, wait_for_approval=False)
        return open_channel

    def anchoring(self, every: int) -> Any:
        """``after_reply`` for a session: at the first request and every ``every``-th, both nodes flush
        their pending ledger rows and exchange signed ledger anchors (as at the end of a job)."""
        signer = AnchorSigner.from_tls(self.cfg.party, self.cfg.tls.cert.read_bytes(), self.cfg.tls.key.read_bytes())

        def after_reply(chan: Channel, seq: int) -> None:
            if seq == 1 or seq % every == 0:
                self.recorder.flush()
                exchange_anchors(chan, self.ledger, signer)
        return after_reply

    def close(self) -> None:
        self.recorder.close()
        self.server.stop()
        self.ledger.close()


def _pins(cfg: ServeConfig) -> Pins:
    return Pins(cfg.model_id, model_sha256(cfg.model), cfg.peer_model_sha256)


class PartnerNode:
    """The feature party's serving node: its service runs in a thread until :meth:`close`."""

    def __init__(self, cfg: ServeConfig) -> None:
        self.model = partner_part(cfg.model_doc(), cfg.peer)
        self.store = _store(cfg, list(self.model.names))
        self.wire = _Wire.open(cfg)
        self.service = PartnerService(self.model, self.store.lookup, _pins(cfg), self.wire.opener(connect_timeout_s=5.0),
                                      after_reply=self.wire.anchoring(cfg.anchor_every))
        self.thread = threading.Thread(target=self.service.run, name="misuan-serve-partner", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.service.stop.set()
        self.thread.join(10)
        self.wire.close()


def start_partner(cfg: ServeConfig) -> PartnerNode:
    return PartnerNode(cfg)


class BankService:
    """What the decision API calls: normalise, look up the bank's features, score jointly, decide."""

    def __init__(self, cfg: ServeConfig, engine: DecisionEngine | None = None, *, max_inflight: int = 64) -> None:
        self.cfg = cfg
        self.model = bank_part(cfg.model_doc(), cfg.peer)
        self.features = list(self.model.names)
        self.store = _store(cfg, self.features)
        self.wire = _Wire.open(cfg)
        self.session = BankSession(self.model, _pins(cfg), self.wire.opener(connect_timeout_s=1.0),
                                   deadline_s=cfg.deadline_ms / 1000, after_reply=self.wire.anchoring(cfg.anchor_every))
        self.engine = engine or DecisionEngine()
        if isinstance(self.model, BankScorecard):  # the API's score is the scorecard's points total
            part = self.model.part
            self.engine = dataclasses.replace(self.engine, pdo=part.pdo, base_score=part.base_score,
                                              base_odds=part.base_odds)
        self.recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=50)
        self.max_inflight = max_inflight
        self.inflight = 0
        self._count_lock = threading.Lock()
        self.started = time.time()
        self.cover = _cover_ids(cfg)
        self._rng = random.SystemRandom()

    def normalise(self, raw_ids: list[Any]) -> list[str]:
        return [k.decode("utf-8") for k in normalize_ids(coerce_ids(raw_ids), self.cfg.normalization)]

    def bank_rows(self, ids: list[str], given: list[dict[str, Any] | None]) -> np.ndarray:
        """The bank's features per applicant: as given in the request, else from its store (NaN: missing)."""
        X, _known = self.store.lookup(ids)
        for i, feats in enumerate(given):
            if feats is not None:
                unknown = sorted(set(feats) - set(self.features))
                if unknown:
                    raise DataError(f"applicant {i}: unknown feature(s) {unknown}; the model's are {self.features}")
                for j, name in enumerate(self.features):
                    if name in feats:  # the others keep the store's value
                        v = feats[name]
                        X[i, j] = np.nan if v is None else float(v)
        return X

    def _with_cover(self, ids: list[str], X: np.ndarray) -> tuple[list[str], np.ndarray, list[int]]:
        """The request's IDs with ``cover_k`` decoys per applicant, shuffled; and where the real ones went."""
        k = self.cfg.cover_k
        if not k or not self.cover:
            return ids, X, list(range(len(ids)))
        decoys = [self._rng.choice(self.cover) for _ in range(k * len(ids))]
        all_ids = ids + decoys
        order = list(range(len(all_ids)))
        self._rng.shuffle(order)
        X_all = np.vstack([X, self.store.lookup(decoys)[0]])
        position = np.empty(len(order), dtype=np.int64)
        position[order] = np.arange(len(order))
        where = position[: len(ids)].tolist()
        return [all_ids[j] for j in order], X_all[order], where

    def decide(self, applicants: list[dict[str, Any]], *, disclose: bool = True) -> list[dict[str, Any]]:
        """Score and decide a batch (one request to the partner); results in the applicants' order."""
        t0 = time.perf_counter()
        ids = self.normalise([a["id"] for a in applicants])
        X = self.bank_rows(ids, [a.get("features") for a in applicants])
        sent, X_sent, where = self._with_cover(ids, X)
        full = self.session.score(sent, X_sent)
        scored = type(full)(full.pd[where], [full.reasons[j] for j in where], [full.partner_missing[j] for j in where])
        today = dt.date.today()
        out = []
        for i, a in enumerate(applicants):
            pd_ = float(scored.pd[i])
            pairs = [(code.split(":", 1)[1], code.split(":", 1)[0]) for code in scored.reasons[i]]
            reasons = self.engine.permitted(pairs)[:4]
            missing = scored.partner_missing[i]
            if not np.isfinite(pd_):
                res: dict[str, Any] = {"decision": "refer", "refer_because": missing, "pd": None, "score": None, "reasons": []}
            else:
                res = self.engine.decide(pd_, monthly_income=float(a.get("monthly_income", 10_000.0)), amount=a.get("amount"),
                                         reasons=reasons, partner_missing=missing, when=today, disclose=disclose)
            res.update(id=str(a["id"]), model_id=self.cfg.model_id, partner_answered=missing is None)
            out.append(res)
        ms = (time.perf_counter() - t0) * 1000
        for r in out:
            r["latency_ms"] = round(ms, 2)
            self.recent.appendleft({k: r.get(k) for k in ("id", "decision", "score", "pd", "limit", "partner_answered")}
                                   | {"at": dt.datetime.now().strftime("%H:%M:%S")})
        return out

    def close(self) -> None:
        self.session.close()
        self.wire.close()


def _cover_ids(cfg: ServeConfig) -> list[str]:
    if not cfg.cover_k or cfg.cover_ids is None:
        return []
    try:
        ids = [line.strip() for line in cfg.cover_ids.read_text(encoding="utf-8").splitlines() if line.strip()]
    except OSError as exc:
        raise ConfigError(f"{cfg.path}: cover.ids: cannot read {cfg.cover_ids}: {exc}") from None
    ids = [k.decode("utf-8") for k in normalize_ids(ids, cfg.normalization)]  # as the applicants' IDs are
    if len(ids) < 10 * cfg.cover_k:
        raise ConfigError(f"{cfg.path}: cover.ids: {len(ids)} IDs are too few to draw {cfg.cover_k} decoys from")
    return ids


def start_bank(cfg: ServeConfig, engine: DecisionEngine | None = None) -> BankService:
    if cfg.http is None:
        raise ConfigError(f"{cfg.path}: http: the bank's node serves the decision API; give http = \"127.0.0.1:8080\"")
    return BankService(cfg, engine)
