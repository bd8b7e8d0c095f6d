"""The aggregator's side of secure aggregation: :class:`Aggregator` (message logic, no I/O) and
:func:`aggregate_as_aggregator` (its driver: round deadlines, dropouts)."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any, TypeVar

import numpy as np

from misuan.crypto.key_agreement import KEY_BYTES, shared_key
from misuan.errors import (
    ConfigError,
    MalformedMessageError,
    NetworkError,
    PartyDroppedError,
    TooFewPartiesError,
)
from misuan.net.channel import Channel
from misuan.protocols.secagg.data_party import SEED_BYTES, DataParty, pair_sign
from misuan.protocols.secagg.disclosures import (
    KEY_LIST,
    KEYS,
    MASKED,
    REVEALED,
    SHARES_IN,
    SHARES_OUT,
    SUM,
    SUM_BACK,
    SURVIVORS,
)
from misuan.protocols.secagg.masking import decode, mask
from misuan.protocols.secagg.messages import (
    PROTOCOL,
    STEP,
    Advertise,
    Inbox,
    KeyList,
    Masked,
    Reveal,
    Shares,
    Survivors,
    Total,
)
from misuan.protocols.secagg.params import MIN_PARTIES, SecAggParams
from misuan.protocols.secagg.shamir import combine

__all__ = ["AggregationResult", "Aggregator", "aggregate_as_aggregator"]

_M = TypeVar("_M")


class AggregationResult:
    """The sum (float64), whose inputs it holds, and who dropped out at which round. A party can be
    in both: one whose link broke after its masked input arrived (at "masked input" or "unmasking")
    is in the sum, and no longer reachable."""

    def __init__(self, total: np.ndarray, contributors: list[str], dropped: dict[str, str]) -> None:
        self.total, self.contributors, self.dropped = total, contributors, dropped


class Aggregator:
    """One round at the aggregator: :meth:`keys`, :meth:`route`, :meth:`survivors`, :meth:`unmask`."""

    def __init__(self, data_parties: list[str], params: SecAggParams, context: str = "") -> None:
        self.all = sorted(data_parties)
        self.params, self.context = params, context
        self.threshold = params.threshold_for(len(self.all))
        params.check_capacity(len(self.all))
        self.session = os.urandom(16)
        self.dropped: dict[str, str] = {}  # party -> the round it dropped out at

    def _enough(self, alive: list[str], stage: str) -> None:
        for p in self.all:
            if p not in alive and p not in self.dropped:
                self.dropped[p] = stage
        if len(alive) < max(self.threshold, MIN_PARTIES):  # a sum of two tells each the other's vector
            raise TooFewPartiesError(
                f"secure aggregation: {len(alive)} of {len(self.all)} data parties left at {stage} "
                f"(dropped: {', '.join(sorted(self.dropped))}), below the threshold {max(self.threshold, MIN_PARTIES)}"
            )

    def keys(self, adverts: Mapping[str, Advertise]) -> KeyList:
        lengths = {a.length for a in adverts.values()}
        for p, a in adverts.items():
            ours = (PROTOCOL.version, self.params.frac_bits, float(self.params.max_abs), self.context)
            theirs = (a.version, a.frac_bits, a.max_abs, a.context)
            if theirs != ours:
                raise ConfigError(f"{p} runs secagg (version, frac_bits, max_abs, context) {theirs}; the aggregator "
                                  f"{ours}: every party must use the same spec")
            if len(a.share_key) != KEY_BYTES or len(a.mask_key) != KEY_BYTES:
                raise MalformedMessageError(f"{p}'s public keys must be {KEY_BYTES} bytes each")
        if len(lengths) > 1:
            raise ConfigError(f"the data parties' vectors differ in length: {sorted(lengths)}")
        self.length = lengths.pop() if lengths else 0
        self.u1 = sorted(adverts)
        self._enough(self.u1, "advertise")
        self.share_pk = {p: adverts[p].share_key for p in self.u1}
        self.mask_pk = {p: adverts[p].mask_key for p in self.u1}
        return KeyList(self.session, self.threshold, self.u1, [self.share_pk[p] for p in self.u1],
                       [self.mask_pk[p] for p in self.u1])

    def route(self, shares: Mapping[str, Shares]) -> dict[str, Inbox]:
        """Each sharer's inbox: what the other sharers encrypted to it."""
        self.u2 = sorted(shares)
        self._enough(self.u2, "share keys")
        box: dict[str, tuple[list[str], list[bytes]]] = {p: ([], []) for p in self.u2}
        for frm in self.u2:
            msg = shares[frm]
            if len(msg.to) != len(msg.ciphertexts) or sorted(msg.to) != [p for p in self.u1 if p != frm]:
                raise MalformedMessageError(f"{frm} must send one share ciphertext to each other data party")
            for to, ct in zip(msg.to, msg.ciphertexts, strict=True):
                if to in box:
                    box[to][0].append(frm)
                    box[to][1].append(ct)
        return {p: Inbox(*box[p]) for p in self.u2}

    def survivors(self, masked: Mapping[str, Masked]) -> Survivors:
        for p, m in masked.items():
            v = np.asarray(m.values)
            if v.dtype != np.uint64 or v.shape != (self.length,):
                raise MalformedMessageError(f"{p}'s masked input must be uint64 of length {self.length}")
        self.u3 = sorted(masked)
        self._enough(self.u3, "masked input")
        self._masked = {p: np.asarray(masked[p].values) for p in self.u3}
        return Survivors(self.u3, [p for p in self.u2 if p not in masked])

    def unmask(self, reveals: Mapping[str, Reveal]) -> np.ndarray:
        """The sum of the survivors' encoded inputs (uint64): their masked inputs, less their self
        masks (seeds rebuilt from the shares) and their pairwise masks with the dropped (mask keys rebuilt)."""
        u4 = sorted(reveals)
        self._enough(u4, "unmasking")
        dropped = [p for p in self.u2 if p not in self.u3]
        x_of = {p: i + 1 for i, p in enumerate(self.u1)}
        seeds: dict[str, dict[int, bytes]] = {p: {} for p in self.u3}
        keys: dict[str, dict[int, bytes]] = {p: {} for p in dropped}
        for frm in u4:
            r = reveals[frm]
            if list(r.seed_of) != self.u3 or list(r.key_of) != dropped or \
                    len(r.seed_shares) != len(self.u3) or len(r.key_shares) != len(dropped):
                raise MalformedMessageError(f"{frm} revealed shares for other parties than the survivors and the dropped")
            for p, share in zip(self.u3, r.seed_shares, strict=True):
                seeds[p][x_of[frm]] = share
            for p, share in zip(dropped, r.key_shares, strict=True):
                keys[p][x_of[frm]] = share
        total = np.zeros(self.length, dtype=np.uint64)
        for p in self.u3:
            total += self._masked[p]
            total -= mask(combine(seeds[p], self.threshold, SEED_BYTES), self.length)
        for d in dropped:
            key = combine(keys[d], self.threshold, 32)
            for p in self.u3:
                m = mask(shared_key(key, self.mask_pk[p], self.session, b"secagg/mask"), self.length)
                # survivor p added pair_sign(p, d) * m: take it away
                total = total - m if pair_sign(p, d) > 0 else total + m
        return total


def _collect(
    chan: Channel, parties: list[str], step: str, expect: type[_M], deadline: float, local: Mapping[str, _M],
) -> dict[str, _M]:
    """Each party's ``step`` message by ``deadline``; a party that misses it, or whose link broke, is left out."""
    got: dict[str, _M] = dict(local)
    for p in parties:
        if p in got:
            continue
        try:
            got[p] = chan.recv(p, step, expect=expect, timeout_s=max(0.001, deadline - time.monotonic()))
        except NetworkError:
            pass
    return got


def _send_each(chan: Channel, msgs: Mapping[str, Any], step: str, skip: str | None) -> list[str]:
    """Send each party its message; the parties whose link broke."""
    lost = []
    for p, msg in msgs.items():
        if p == skip:
            continue
        try:
            chan.send(p, step, msg)
        except NetworkError:
            lost.append(p)
    return lost


def aggregate_as_aggregator(
    chan: Channel, data_parties: list[str], params: SecAggParams | None = None, *, own: np.ndarray | None = None,
    step: str = STEP, context: str = "", skip: frozenset[str] = frozenset(), expected: list[str] | None = None,
) -> AggregationResult:
    """Run one aggregation as ``chan.party``; ``own``: this party's vector when it is a data party too
    (it then runs that role in process; it must be in ``data_parties``). ``context`` must equal the
    data parties' (:func:`~misuan.protocols.secagg.aggregate_as_data_party`); ``skip``: parties known
    to be gone (an earlier round of the same job): not waited for, still counted in the threshold.
    ``expected``: the only set of contributors whose sum may be released (a multi-round fit's); when
    the masked inputs come from another set, :class:`PartyDroppedError` before any unmasking."""
    params = params or SecAggParams()
    agg = Aggregator(data_parties, params, context)
    me = chan.party
    local: DataParty | None = None
    if own is not None:
        if me not in agg.all:
            raise ConfigError(f"{me} aggregates with its own vector, so it must be one of the data parties")
        local = DataParty(me, own, agg.all, params, context)
    remote = [p for p in agg.all if p != me and p not in skip]

    def deadline() -> float:
        return time.monotonic() + params.round_timeout_s

    adverts = _collect(chan, remote, f"{step}/advertise", Advertise, deadline(), {me: local.advertise()} if local else {})
    for p in adverts:
        if p != me:
            chan.disclose(step, KEYS, p, me, (2,))
    keys = agg.keys(adverts)
    for p in _send_each(chan, dict.fromkeys(agg.u1, keys), f"{step}/keys", me):
        agg.dropped.setdefault(p, "advertise")
    for p in agg.u1:
        if p != me and p not in agg.dropped:
            chan.disclose(step, KEY_LIST, me, p, (len(agg.u1), 2))
    alive = [p for p in agg.u1 if p not in agg.dropped]
    shares = _collect(chan, [p for p in alive if p != me], f"{step}/shares", Shares, deadline(),
                      {me: local.share(keys)} if local else {})
    for p in shares:
        if p != me:
            chan.disclose(step, SHARES_OUT, p, me, (len(shares[p].to),))
    inboxes = agg.route(shares)
    for p in _send_each(chan, inboxes, f"{step}/inbox", me):
        agg.dropped.setdefault(p, "share keys")
    for p in inboxes:
        if p != me and p not in agg.dropped:
            chan.disclose(step, SHARES_IN, me, p, (len(inboxes[p].senders),))
    alive = [p for p in agg.u2 if p not in agg.dropped]
    masked = _collect(chan, [p for p in alive if p != me], f"{step}/masked", Masked, deadline(),
                      {me: local.masked(inboxes[me])} if local else {})
    for p in masked:
        if p != me:
            chan.disclose(step, MASKED, p, me, (agg.length,))
    survivors = agg.survivors(masked)
    if expected is not None and agg.u3 != sorted(expected):
        raise PartyDroppedError(
            f"secure aggregation {step}: masked inputs from {agg.u3}, but this job sums {sorted(expected)}; "
            "no sum is released"
        )
    for p in _send_each(chan, dict.fromkeys(agg.u3, survivors), f"{step}/survivors", me):
        agg.dropped.setdefault(p, "masked input")
    for p in agg.u3:
        if p != me and p not in agg.dropped:
            chan.disclose(step, SURVIVORS, me, p, (), survivors=len(survivors.survivors), dropped=list(survivors.dropped))
    alive = [p for p in agg.u3 if p not in agg.dropped]
    reveals = _collect(chan, [p for p in alive if p != me], f"{step}/reveal", Reveal, deadline(),
                       {me: local.reveal(survivors)} if local else {})
    for p in reveals:
        if p != me:
            chan.disclose(step, REVEALED, p, me, (len(reveals[p].seed_of) + len(reveals[p].key_of),))
    encoded = agg.unmask(reveals)
    total = decode(encoded, params.frac_bits)
    chan.disclose(step, SUM, "all", me, total.shape, contributors=len(agg.u3))
    if params.broadcast:
        msg = Total(encoded, agg.u3)
        sent_to = [p for p in agg.u3 if p != me and p in reveals]
        for p in _send_each(chan, {p: msg for p in sent_to}, f"{step}/total", me):
            agg.dropped.setdefault(p, "unmasking")
        for p in sent_to:
            if p not in agg.dropped:
                chan.disclose(step, SUM_BACK, me, p, total.shape)
    return AggregationResult(total, list(agg.u3), dict(agg.dropped))
