"""In-memory channels: every party of a job in one process, for tests and notebooks.

Messages still go through the wire encoding, so byte counts and type checks are the same as over
gRPC; only the transport differs.
"""

from __future__ import annotations

from collections.abc import Sequence

from misuan.errors import PeerDisconnectedError
from misuan.net.channel import DEFAULT_TIMEOUT_S, Channel, Mailbox
from misuan.net.disclosure import DisclosureRecorder, MemoryRecorder


class MemoryNetwork:
    """The shared medium of one simulated job: a mailbox per party."""

    def __init__(self, parties: Sequence[str], job_id: str = "local-job") -> None:
        self.parties = tuple(parties)
        self.job_id = job_id
        self.mailboxes = {p: Mailbox() for p in self.parties}
        self.closed: set[str] = set()

    def channel(
        self,
        party: str,
        recorder: DisclosureRecorder | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> MemoryChannel:
        return MemoryChannel(self, party, recorder or MemoryRecorder(), timeout_s)

    def channels(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> dict[str, MemoryChannel]:
        """One channel per party, each with its own recorder (its own ledger)."""
        return {p: self.channel(p, timeout_s=timeout_s) for p in self.parties}


class MemoryChannel(Channel):
    def __init__(
        self,
        network: MemoryNetwork,
        party: str,
        recorder: DisclosureRecorder,
        timeout_s: float,
    ) -> None:
        super().__init__(party, network.parties, network.job_id, recorder, timeout_s)
        self.network = network

    def _transmit(self, to: str, step: str, seq: int, parts: list[bytes | memoryview], size: int) -> None:
        if to in self.network.closed:
            raise PeerDisconnectedError(f"{to} has closed its channel; cannot send step {step!r}")
        self.network.mailboxes[to].put(self.party, step, seq, bytearray(b"".join(parts)))

    def _mailbox(self) -> Mailbox:
        return self.network.mailboxes[self.party]

    def close(self) -> None:
        self.network.closed.add(self.party)
        self._mailbox().close_receiver()
        for p, box in self.network.mailboxes.items():
            if p != self.party:
                box.close_sender(self.party, "its channel was closed")
