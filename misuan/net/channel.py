"""The one channel interface every protocol talks through.

A :class:`Channel` is one party's end of a job: it sends typed messages (see :mod:`misuan.net.wire`)
to named peers and receives them, each tagged by (job id, step, sequence number). Sequence numbers
are kept per (peer, step) on both ends, so messages match deterministically whatever order the
transport delivers them in, and a message for another job or a replayed sequence number is refused.

Implementations (in-memory in :mod:`misuan.net.memory`, gRPC with mutual TLS in
:mod:`misuan.net.grpc_channel`) only move encoded bytes; encoding, sequencing, byte and round
counting and the disclosure hook live here, so both behave identically.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from misuan.errors import (
    PeerDisconnectedError,
    PeerTimeoutError,
    UnexpectedMessageError,
)
from misuan.net import wire
from misuan.net.disclosure import Disclosure, DisclosureKind, DisclosureRecorder, MemoryRecorder

if TYPE_CHECKING:
    from misuan.crypto.certs import TlsMaterial
    from misuan.crypto.trust import TrustAnchors

__all__ = ["DEFAULT_MAILBOX_MESSAGES", "Channel", "ChannelStats", "Disclosure", "DisclosureKind", "Mailbox", "PeerStats"]

DEFAULT_TIMEOUT_S = 600.0
DEFAULT_MAX_MESSAGE_BYTES = 8 << 30  # 8 GiB: far above any job's need, still refuses absurd claims

_M = TypeVar("_M")


@dataclasses.dataclass
class PeerStats:
    bytes_sent: int = 0
    bytes_received: int = 0
    messages_sent: int = 0
    messages_received: int = 0


@dataclasses.dataclass
class ChannelStats:
    """Traffic of one party. A *round* starts whenever the party sends after having received."""

    per_peer: dict[str, PeerStats] = dataclasses.field(default_factory=dict)
    rounds: int = 0

    @property
    def bytes_sent(self) -> int:
        return sum(p.bytes_sent for p in self.per_peer.values())

    @property
    def bytes_received(self) -> int:
        return sum(p.bytes_received for p in self.per_peer.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "rounds": self.rounds,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "per_peer": {k: dataclasses.asdict(v) for k, v in self.per_peer.items()},
        }


DEFAULT_MAILBOX_MESSAGES = 4096  # unconsumed messages; honest protocols keep a few dozen in flight


class Mailbox:
    """Received, not yet consumed payloads keyed by (sender, step, seq); bounded in bytes and count.

    ``put`` blocks while more than ``capacity_bytes`` or ``capacity_messages`` wait unconsumed
    (back-pressure to the transport), except that one message always fits so a single large message
    cannot deadlock. The count bound matters for tiny messages: 20,000 empty payloads on steps the
    receiver never reads would otherwise grow the box (keys, objects) without limit.
    """

    def __init__(self, capacity_bytes: int = 1 << 30, capacity_messages: int = DEFAULT_MAILBOX_MESSAGES) -> None:
        self._cond = threading.Condition()
        self._items: dict[tuple[str, str, int], bytearray | bytes] = {}
        self._buffered = 0
        self._capacity = capacity_bytes
        self._capacity_messages = capacity_messages
        self._closed: dict[str, str] = {}  # sender -> reason
        self._receiver_closed = False

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def _full(self, size: int) -> bool:
        if len(self._items) >= self._capacity_messages:
            return True
        return bool(self._buffered) and self._buffered + size > self._capacity

    def put(self, sender: str, step: str, seq: int, payload: bytearray | bytes) -> None:
        with self._cond:
            key = (sender, step, seq)
            if key in self._items:
                raise UnexpectedMessageError(f"{sender} sent step {step!r} message #{seq} twice")
            while self._full(len(payload)):
                if self._receiver_closed:  # nobody will drain the box: do not block the transport forever
                    raise PeerDisconnectedError(f"the receiver closed its channel; {sender}'s step {step!r} message dropped")
                self._cond.wait(timeout=1.0)
            self._items[key] = payload
            self._buffered += len(payload)
            self._cond.notify_all()

    def get(self, sender: str, step: str, seq: int, timeout: float) -> bytearray | bytes:
        deadline = time.monotonic() + timeout
        key = (sender, step, seq)
        with self._cond:
            while key not in self._items:
                if sender in self._closed:
                    raise PeerDisconnectedError(
                        f"{sender} disconnected before sending step {step!r} message #{seq}: "
                        f"{self._closed[sender]}"
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise PeerTimeoutError(
                        f"no step {step!r} message #{seq} from {sender} within {timeout:.0f} s"
                    )
                self._cond.wait(timeout=min(left, 1.0))
            payload = self._items.pop(key)
            self._buffered -= len(payload)
            self._cond.notify_all()
            return payload

    def close_receiver(self) -> None:
        """The owning party closed its channel: wake and refuse senders blocked on back-pressure."""
        with self._cond:
            self._receiver_closed = True
            self._cond.notify_all()

    def close_sender(self, sender: str, reason: str) -> None:
        with self._cond:
            self._closed.setdefault(sender, reason)
            self._cond.notify_all()


class Channel(ABC):
    """One party's end of a job's channel."""

    def __init__(
        self,
        party: str,
        parties: Sequence[str],
        job_id: str,
        recorder: DisclosureRecorder | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        if party not in parties:
            raise ValueError(f"party {party!r} is not one of the job's parties {list(parties)}")
        if len(set(parties)) != len(parties):
            raise ValueError(f"party names must be unique: {list(parties)}")
        self.party = party
        self.parties = tuple(parties)
        self.job_id = job_id
        self.recorder: DisclosureRecorder = recorder if recorder is not None else MemoryRecorder()
        self.timeout_s = timeout_s
        self.stats = ChannelStats(per_peer={p: PeerStats() for p in parties if p != party})
        self._send_seq: dict[tuple[str, str], int] = {}
        self._recv_seq: dict[tuple[str, str], int] = {}
        self._received_since_send = True
        self._lock = threading.Lock()
        # set to a list to keep every message this party receives: (sender, step, message);
        # transcript tests read it to show what a party actually saw
        self.transcript: list[tuple[str, str, Any]] | None = None
        # party -> fingerprints of the trust anchors this end holds for it (gRPC with anchors); the
        # job hello compares them with every peer's; empty where the transport authenticates no one
        self.trust_view: dict[str, list[str]] = {}

    @property
    def peers(self) -> tuple[str, ...]:
        return tuple(p for p in self.parties if p != self.party)

    # --- public API ---------------------------------------------------------------------------
    def send(self, to: str, step: str, msg: Any) -> int:
        """Send ``msg`` to ``to`` under ``step``; returns the number of bytes sent."""
        self._check_peer(to)
        parts = wire.encode_parts(msg)
        size = wire.encoded_size(parts)
        with self._lock:
            seq = self._send_seq.get((to, step), 0)
            self._send_seq[(to, step)] = seq + 1
            if self._received_since_send:
                self.stats.rounds += 1
                self._received_since_send = False
        self._transmit(to, step, seq, parts, size)
        peer = self.stats.per_peer[to]
        peer.bytes_sent += size
        peer.messages_sent += 1
        return size

    def recv(self, frm: str, step: str, expect: type[_M] | None = None, *, timeout_s: float | None = None) -> Any:
        """Receive the next ``step`` message from ``frm``; if ``expect`` is given, check its type.

        ``timeout_s`` (default: the channel's) bounds the wait; a protocol with a round deadline
        passes what is left of it (a peer that missed it counts as gone: its message is not waited for
        again)."""
        self._check_peer(frm)
        with self._lock:
            seq = self._recv_seq.get((frm, step), 0)
            self._recv_seq[(frm, step)] = seq + 1
        try:
            payload = self._mailbox().get(frm, step, seq, self.timeout_s if timeout_s is None else timeout_s)
        except PeerTimeoutError:
            with self._lock:  # the message may still come: a later recv of this step waits for it again
                if self._recv_seq.get((frm, step)) == seq + 1:
                    self._recv_seq[(frm, step)] = seq
            raise
        peer = self.stats.per_peer[frm]
        peer.bytes_received += len(payload)
        peer.messages_received += 1
        self._received_since_send = True
        # the type and size bound are checked on the payload's first bytes, before any object exists
        wire.check_expected(payload, expect, frm, step)
        msg = wire.decode(payload)
        if self.transcript is not None:
            self.transcript.append((frm, step, msg))
        if expect is not None and not isinstance(msg, expect):
            raise UnexpectedMessageError(
                f"step {step!r}: expected {expect.__name__} from {frm}, got {type(msg).__name__}"
            )
        return msg

    def disclose(
        self,
        step: str,
        kind: DisclosureKind,
        discloser: str,
        recipient: str,
        shape: tuple[int, ...] = (),
        **detail: Any,
    ) -> None:
        """Record that ``discloser`` reveals a value of catalogue entry ``kind`` to ``recipient``.

        Protocols call this on *both* sides at the point of disclosure, with the entry declared in
        their package's catalogue (``protocols/<name>/disclosures.py``); each party's ledger keeps
        the entries in which it is discloser or recipient. ``detail`` holds small scalar facts
        (a count, the feature's name).
        """
        if not isinstance(kind, DisclosureKind):
            raise TypeError(f"disclose() takes a catalogue entry (DisclosureKind), not {type(kind).__name__}")
        if self.party not in (discloser, recipient):
            return
        self.recorder.record(
            Disclosure(
                job_id=self.job_id,
                step=step,
                discloser=discloser,
                recipient=recipient,
                what=kind.what,
                shape=tuple(int(s) for s in shape),
                form=kind.form,
                detail=detail,
            )
        )

    def identity(self) -> TlsMaterial | None:
        """This party's TLS material (CA, certificate, key) if the transport authenticates with it.

        The job runner signs its ledger anchors with that key (:mod:`misuan.node.anchoring`);
        in-memory channels have none.
        """
        return None

    def peer_anchors(self, peer: str) -> TrustAnchors | None:
        """The trust anchors this party holds for ``peer`` (gRPC with per-party anchors), else None."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release transport resources; peers then see :class:`PeerDisconnectedError`."""

    def __enter__(self) -> Channel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transport hooks ----------------------------------------------------------------------
    @abstractmethod
    def _transmit(self, to: str, step: str, seq: int, parts: list[bytes | memoryview], size: int) -> None:
        """Deliver one encoded message to peer ``to``."""

    @abstractmethod
    def _mailbox(self) -> Mailbox:
        """The mailbox this party's incoming messages land in."""

    def _check_peer(self, peer: str) -> None:
        if peer == self.party or peer not in self.parties:
            raise ValueError(f"{peer!r} is not a peer of {self.party!r} in job {self.job_id!r}")

