"""The long-lived serving session between the bank's node and the partner's, with its faults handled.

:class:`PartnerService` (the feature party) opens the session and answers until stopped; when the
bank goes away it opens a new one and waits for it. :class:`BankSession` (the label party) scores
under a lock (one request on the wire at a time; a batch is one request), opens the session on first
use and again after a failure, and never waits past its deadline: when the partner does not answer
in time, is down, or does not know the applicant, the answer falls back to the model's
missing-value path for the partner's part (each tree's default directions, which the partner sent
for a probe ID at the start of the session) and says why, so the decision becomes ``refer``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from misuan.errors import ModelMismatchError, NetworkError, PeerTimeoutError
from misuan.net.channel import Channel
from misuan.protocols.serving import BankPart, FeatureLookup, PartnerPart, serve_partner

__all__ = ["MISSING_PROBE", "BankSession", "PartnerService", "Pins", "Scored"]

log = logging.getLogger("misuan.serving")
MISSING_PROBE = "misuan:missing-value-probe"  # an ID no store holds: the partner answers its trees' default directions
Opener = Callable[[], Channel]
PER_ROW_S = 50e-6  # a batch's deadline grows by this per applicant
AfterReply = Callable[[Channel, int], None]  # (session channel, request number): run by both sides after each reply


@dataclass(frozen=True)
class Pins:
    model_id: str
    own_part: str  # SHA-256 of this node's model part
    peer_part: str  # the SHA-256 it expects of the peer's


class PartnerService:
    """The feature party's side: open a session, answer, reopen after the bank goes away."""

    def __init__(self, model: PartnerPart, lookup: FeatureLookup, pins: Pins, opener: Opener, *, retry_s: float = 0.5,
                 after_reply: AfterReply | None = None) -> None:
        self.model, self.lookup, self.pins, self.opener, self.retry_s = model, lookup, pins, opener, retry_s
        self.after_reply = after_reply
        self.stop = threading.Event()
        self.answered = 0
        self.error: BaseException | None = None  # a model mismatch stops the service for good
        self.last_error = ""

    def run(self) -> None:
        while not self.stop.is_set():
            chan: Channel | None = None
            try:
                chan = self.opener()
                self.answered += serve_partner(chan, self.model, self.lookup, model_id=self.pins.model_id,
                                               own_part=self.pins.own_part, peer_part=self.pins.peer_part,
                                               stop=self.stop.is_set, poll_s=0.5, after_reply=self.after_reply,
                                               hello_timeout_s=30.0)
            except ModelMismatchError as exc:  # the only error that stops the service: an operator must act
                self.error = exc
                log.error("serving stopped: %s", exc)
                return
            except (NetworkError, OSError) as exc:
                log.info("serving session ended (%s); reopening", exc)
                self.stop.wait(self.retry_s)
            except Exception as exc:  # a malformed request, a ledger or store error: this session ends, serving goes on
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.error("serving session failed (%s); reopening", self.last_error)
                self.stop.wait(self.retry_s)
            finally:
                if chan is not None:
                    chan.close()


@dataclass
class Scored:
    """One request's outcome at the bank: per applicant the PD, the principal reasons, and why the
    partner's part is missing (None when the partner answered and knew the applicant)."""

    pd: np.ndarray
    reasons: list[list[str]]
    partner_missing: list[str | None]


class BankSession:
    """The label party's side: score under a deadline; reopen the session after a failure."""

    def __init__(self, model: BankPart, pins: Pins, opener: Opener, *, deadline_s: float = 0.2,
                 connect_timeout_s: float = 2.0, k_reasons: int = 8, after_reply: AfterReply | None = None) -> None:
        self.model, self.pins, self.opener, self.after_reply = model, pins, opener, after_reply
        self.deadline_s, self.connect_timeout_s, self.k_reasons = deadline_s, connect_timeout_s, k_reasons
        self._lock = threading.Lock()
        self._chan: Channel | None = None
        self._missing: Any = None  # the partner's answer for a customer it does not know (the session's probe)
        self._down_until = 0.0
        self.last_error = ""

    @property
    def ready(self) -> bool:
        return self._chan is not None

    def _open(self) -> Channel:
        chan = self.opener()
        try:
            self.model.pin(chan, model_id=self.pins.model_id, own_part=self.pins.own_part, peer_part=self.pins.peer_part,
                           timeout_s=self.connect_timeout_s)
            probe = self.model.score(chan, [MISSING_PROBE], np.zeros((1, len(self.model.names))),
                                     deadline_s=self.connect_timeout_s, after_reply=self.after_reply)
            self._missing = probe
        except BaseException:
            chan.close()
            raise
        return chan

    def close(self) -> None:
        with self._lock:
            if self._chan is not None:
                self._chan.close()
                self._chan = None

    def score(self, ids: list[str], X_bank: np.ndarray) -> Scored:
        """Scores of ``ids`` (the bank's features ``X_bank``); never waits past the deadline for the partner."""
        X = np.asarray(X_bank, dtype=np.float64)
        with self._lock:
            result, why = self._ask(ids, X)
        if result is None:
            return self._fallback(X, why)
        missing: list[str | None] = [None if k else "the partner does not know this customer" for k in result.known.tolist()]
        return Scored(result.pd, self._reasons(result), missing)

    def _ask(self, ids: list[str], X: np.ndarray) -> tuple[Any, str]:
        if self._chan is None:
            if time.monotonic() < self._down_until:
                return None, f"the partner is unavailable ({self.last_error})"
            try:
                self._chan = self._open()
            except Exception as exc:  # noqa: BLE001 - whatever stops the session from opening, the answer falls back
                self._mark_down(exc)
                return None, f"the partner is unavailable ({exc})"
        # a batch gets its size's share of time on top (portfolio re-scoring, not an applicant waiting)
        deadline = self.deadline_s + PER_ROW_S * len(ids)
        try:
            return self.model.score(self._chan, ids, X, deadline_s=deadline, after_reply=self.after_reply), ""
        except PeerTimeoutError as exc:  # slow, not gone: keep the session, its late reply will be skipped
            self.last_error = str(exc)
            return None, f"the partner did not answer in time ({exc})"
        except Exception as exc:  # noqa: BLE001 - a dropped link, a malformed reply: this session is over
            self._chan.close()
            self._chan = None
            self._mark_down(exc)
            return None, f"the partner failed ({exc})"

    def _mark_down(self, exc: BaseException) -> None:
        self.last_error = str(exc)
        self._down_until = time.monotonic() + min(1.0, self.deadline_s * 5)
        log.warning("partner unavailable: %s", exc)

    def _fallback(self, X: np.ndarray, why: str) -> Scored:
        """The partner's part as for a customer it does not know (its default directions, cached from
        the session's probe), or no PD at all if the partner was never reached."""
        n = X.shape[0]
        if self._missing is None:
            return Scored(np.full(n, np.nan), [[] for _ in range(n)], [why] * n)
        result = self.model.fallback(self._missing, X)
        return Scored(result.pd, self._reasons(result), [why] * n)

    def _reasons(self, result: Any) -> list[list[str]]:
        return self.model.reasons(result, self.k_reasons)
