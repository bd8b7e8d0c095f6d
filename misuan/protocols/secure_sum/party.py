"""The one role of secure sum: :class:`SecureSumParty` (pure message logic) and :func:`secure_sum` (its driver)."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence

import numpy as np

from misuan.errors import MalformedMessageError
from misuan.net.channel import Channel
from misuan.protocols.secure_sum.disclosures import PARTIAL_SUM, TOTAL
from misuan.protocols.secure_sum.messages import STEP, PartialSum, Share


def _random_u64(n: int) -> np.ndarray:
    return np.frombuffer(secrets.token_bytes(8 * n), dtype=np.uint64).copy()


def _check(values: object, length: int, sender: str) -> np.ndarray:
    if not isinstance(values, np.ndarray) or values.dtype != np.uint64 or values.shape != (length,):
        shape = getattr(values, "shape", None)
        raise MalformedMessageError(f"{sender} sent shape {shape} {getattr(values, 'dtype', type(values).__name__)}, expected ({length},) uint64")
    return values


class SecureSumParty:
    """One party's state: its shares out, then its partial sum, then the total. No I/O."""

    def __init__(self, values: np.ndarray, peers: Sequence[str]) -> None:
        self._x = np.asarray(values, dtype=np.int64).view(np.uint64)
        self.n = int(self._x.shape[0])
        self.peers = tuple(peers)
        self._held = self._x.copy()

    def shares(self) -> dict[str, Share]:
        """One uniformly random share for each peer; the party keeps what makes them add up to its input."""
        out = {}
        for peer in self.peers:
            share = _random_u64(self.n)
            self._held = self._held - share  # wraps modulo 2**64 by design
            out[peer] = Share(share)
        return out

    def partial_sum(self, received: Mapping[str, Share]) -> PartialSum:
        """The sum of the share kept and the shares received (sent to every peer)."""
        held = self._held.copy()
        for peer in self.peers:
            held += _check(received[peer].values, self.n, peer)
        self._held = held
        return PartialSum(held)

    def total(self, partials: Mapping[str, PartialSum]) -> np.ndarray:
        total = self._held.copy()
        for peer in self.peers:
            total += _check(partials[peer].values, self.n, peer)
        return total.view(np.int64)


def secure_sum(chan: Channel, values: np.ndarray, step: str = STEP) -> np.ndarray:
    """Run the secure sum as ``chan.party``; returns the int64 total known to every party."""
    me = SecureSumParty(values, chan.peers)
    for peer, share in me.shares().items():
        chan.send(peer, f"{step}/share", share)
    shares = {peer: chan.recv(peer, f"{step}/share", expect=Share) for peer in me.peers}
    partial = me.partial_sum(shares)
    for peer in me.peers:
        chan.send(peer, f"{step}/partial", partial)
        chan.disclose(step, PARTIAL_SUM, chan.party, peer, (me.n,))
    partials = {}
    for peer in me.peers:
        partials[peer] = chan.recv(peer, f"{step}/partial", expect=PartialSum)
        chan.disclose(step, PARTIAL_SUM, peer, chan.party, (me.n,))
    total = me.total(partials)
    chan.disclose(step, TOTAL, "all", chan.party, (me.n,))
    return total
