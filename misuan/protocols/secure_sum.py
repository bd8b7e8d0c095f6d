"""Secure sum of integer vectors by additive secret sharing (the toy protocol of the foundation).

Each of n parties holds a vector ``x_p`` of int64 of the same length and all learn ``sum_p x_p``
(mod 2**64, read as signed int64).

Protocol. Every party splits its vector into n uniformly random shares modulo 2**64 that add up to
it, keeps one and sends one to each peer (step ``share``). Each party adds the shares it holds and
sends that partial sum to every peer (step ``partial``); everyone adds the n partial sums.

Security model: semi-honest, any coalition of up to n-1 parties. A share and a partial sum are
uniform given the other parties' views, except that the n partials sum to the result.
Leakage: the total to every party, and nothing more; with n = 2 the total and one's own input
determine the peer's input, which is inherent in the output. Ledger: each party records the
partial sum it reveals to each peer (form ``aggregate``) and the total it learns.
"""

from __future__ import annotations

import dataclasses
import secrets

import numpy as np

from misuan.errors import MalformedMessageError
from misuan.net import wire
from misuan.net.channel import Channel

STEP = "secure_sum"


@wire.message
@dataclasses.dataclass
class Share:
    values: np.ndarray  # uint64, uniformly random


@wire.message
@dataclasses.dataclass
class PartialSum:
    values: np.ndarray  # uint64: the sum of the shares this party holds


def _random_u64(n: int) -> np.ndarray:
    return np.frombuffer(secrets.token_bytes(8 * n), dtype=np.uint64).copy()


def _check(values: np.ndarray, length: int, sender: str) -> np.ndarray:
    if values.dtype != np.uint64 or values.shape != (length,):
        raise MalformedMessageError(f"{sender} sent shape {values.shape} {values.dtype}, expected ({length},) uint64")
    return values


def secure_sum(chan: Channel, values: np.ndarray, step: str = STEP) -> np.ndarray:
    """Run the secure sum as ``chan.party``; returns the int64 total known to every party."""
    x = np.asarray(values, dtype=np.int64).view(np.uint64)
    n = x.shape[0]
    peers = chan.peers
    kept = x.copy()
    for peer in peers:
        share = _random_u64(n)
        kept -= share  # wraps modulo 2**64 by design
        chan.send(peer, f"{step}/share", Share(share))
    held = kept
    for peer in peers:
        held = held + _check(chan.recv(peer, f"{step}/share", expect=Share).values, n, peer)
    for peer in peers:
        chan.send(peer, f"{step}/partial", PartialSum(held))
        chan.disclose(step, chan.party, peer, "partial sum of additive shares", (n,), form="aggregate")
    total = held.copy()
    for peer in peers:
        total += _check(chan.recv(peer, f"{step}/partial", expect=PartialSum).values, n, peer)
        chan.disclose(step, peer, chan.party, "partial sum of additive shares", (n,), form="aggregate")
    chan.disclose(step, "all", chan.party, "sum of all parties' vectors", (n,))
    return total.view(np.int64)

