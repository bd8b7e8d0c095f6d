"""The data party's side of secure aggregation: :class:`DataParty` (message logic, no I/O) and
:func:`aggregate_as_data_party` (its driver over a channel)."""

from __future__ import annotations

import os

import numpy as np

from misuan.crypto.key_agreement import KEY_BYTES, KeyPair, seal, shared_key, unseal
from misuan.errors import ConfigError, MalformedMessageError, TooFewPartiesError
from misuan.net.channel import Channel
from misuan.protocols.secagg.disclosures import (
    KEY_LIST,
    KEYS,
    MASKED,
    REVEALED,
    SHARES_IN,
    SHARES_OUT,
    SUM_BACK,
    SURVIVORS,
)
from misuan.protocols.secagg.masking import decode, encode, mask
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
from misuan.protocols.secagg.shamir import SHARE_BYTES, split

__all__ = ["SEED_BYTES", "DataParty", "aggregate_as_data_party", "pair_sign"]

SEED_BYTES = 16  # the self mask's AES key


def pair_sign(me: str, other: str) -> int:
    """+1 when ``me`` adds the pairwise mask with ``other``, -1 when it subtracts it: the two cancel."""
    return 1 if me < other else -1


def _aad(session: bytes, frm: str, to: str) -> bytes:
    return session + b"\x00" + frm.encode() + b"\x00" + to.encode()


class DataParty:
    """One data party's round: :meth:`advertise`, :meth:`share`, :meth:`masked`, :meth:`reveal`, :meth:`total`."""

    def __init__(self, name: str, values: np.ndarray, data_parties: list[str], params: SecAggParams,
                 context: str = "") -> None:
        self.name, self.params = name, params
        self.all = sorted(data_parties)
        if name not in self.all:
            raise ConfigError(f"{name} takes part in secure aggregation but is not one of its data parties {self.all}")
        # from the job's list, not from what the aggregator says: a shrunk list must not lower it
        self.threshold = params.threshold_for(len(self.all))
        params.check_capacity(len(self.all))
        self.context = context
        self.encoded = encode(values, params.frac_bits, params.max_abs)
        self._share_sk = KeyPair()
        self._mask_sk = KeyPair()
        self._seed = os.urandom(SEED_BYTES)
        self._held: dict[str, tuple[bytes, bytes]] = {}  # from whom: (seed share, mask-key share)
        self.parties: list[str] = []
        self.sharers: list[str] = []
        self._survivors: list[str] = []

    def advertise(self) -> Advertise:
        return Advertise(PROTOCOL.version, int(self.encoded.size), self.params.frac_bits, float(self.params.max_abs),
                         self.context, self._share_sk.public, self._mask_sk.public)

    def share(self, keys: KeyList) -> Shares:
        """Check the key list; Shamir-share the seed and the mask key, one encrypted pair per other party."""
        parties = list(keys.parties)
        n = len(parties)
        if parties != sorted(set(parties)) or self.name not in parties or not set(parties) <= set(self.all) or not (
                len(keys.share_keys) == len(keys.mask_keys) == n and len(keys.session) == 16):
            raise MalformedMessageError("the aggregator's key list is malformed, names strangers or leaves this party out")
        if any(not isinstance(k, bytes) or len(k) != KEY_BYTES for k in list(keys.share_keys) + list(keys.mask_keys)):
            raise MalformedMessageError("the key list's public keys must be 32 bytes each")
        t = self.threshold
        if keys.threshold != t:
            raise ConfigError(f"the aggregator runs threshold {keys.threshold}, this party {t}: both must use the same spec")
        if n < t:
            raise TooFewPartiesError(f"{n} data parties advertised keys, below the threshold {t}")
        self.parties, self.session = parties, bytes(keys.session)
        self.share_pk = dict(zip(parties, keys.share_keys, strict=True))
        self.mask_pk = dict(zip(parties, keys.mask_keys, strict=True))
        mask_raw = self._mask_sk.private_raw
        seed_shares = split(self._seed, n, t)
        key_shares = split(mask_raw, n, t)
        to, cts = [], []
        for i, other in enumerate(parties):
            if other == self.name:
                self._held[self.name] = (seed_shares[i], key_shares[i])
                continue
            key = shared_key(self._share_sk.private_raw, self.share_pk[other], self.session, b"secagg/shares")
            to.append(other)
            cts.append(seal(key, seed_shares[i] + key_shares[i], _aad(self.session, self.name, other)))
        return Shares(to, cts)

    def masked(self, inbox: Inbox) -> Masked:
        """Keep the shares addressed to this party; the input plus its self mask and its pairwise masks
        with every data party that shared (the others dropped before masking: no mask with them)."""
        senders = list(inbox.senders)
        if len(senders) != len(inbox.ciphertexts) or len(set(senders)) != len(senders) or \
                not set(senders) <= set(self.parties) - {self.name}:
            raise MalformedMessageError("the aggregator's inbox names parties outside the key list")
        for frm, ct in zip(senders, inbox.ciphertexts, strict=True):
            key = shared_key(self._share_sk.private_raw, self.share_pk[frm], self.session, b"secagg/shares")
            plain = unseal(key, ct, _aad(self.session, frm, self.name), f"the shares {frm} encrypted to this party")
            if len(plain) != 2 * SHARE_BYTES:
                raise MalformedMessageError(f"{frm}'s shares have the wrong length")
            self._held[frm] = (plain[:SHARE_BYTES], plain[SHARE_BYTES:])
        self.sharers = sorted(set(senders) | {self.name})
        if len(self.sharers) < self.threshold:
            raise TooFewPartiesError(f"{len(self.sharers)} data parties shared keys, below the threshold {self.threshold}")
        y = self.encoded + mask(self._seed, self.encoded.size)
        mask_raw = self._mask_sk.private_raw
        for other in self.sharers:
            if other != self.name:
                m = mask(shared_key(mask_raw, self.mask_pk[other], self.session, b"secagg/mask"), self.encoded.size)
                y = y + m if pair_sign(self.name, other) > 0 else y - m
        return Masked(y)

    def reveal(self, msg: Survivors) -> Reveal:
        """Seed shares of the survivors, mask-key shares of the dropped: never both of one party."""
        survivors, dropped = list(msg.survivors), list(msg.dropped)
        if survivors != sorted(set(survivors)) or dropped != sorted(set(dropped)):
            raise MalformedMessageError("the aggregator's survivors and dropped must be sorted lists of distinct names")
        if set(survivors) & set(dropped) or set(survivors) | set(dropped) != set(self.sharers) or self.name not in survivors:
            raise MalformedMessageError("the aggregator's survivors and dropped must split the parties that shared")
        if len(survivors) < max(self.threshold, MIN_PARTIES):  # a sum of two tells each the other's vector
            raise TooFewPartiesError(f"{len(survivors)} masked inputs arrived, below the threshold "
                                     f"{max(self.threshold, MIN_PARTIES)}")
        self._survivors = survivors
        return Reveal(survivors, [self._held[s][0] for s in survivors], dropped, [self._held[d][1] for d in dropped])

    def total(self, msg: Total) -> tuple[np.ndarray, list[str]]:
        """The sum, and whose inputs it holds (the survivors this party was told of)."""
        values = np.asarray(msg.values)
        if values.dtype != np.uint64 or values.shape != self.encoded.shape:
            raise MalformedMessageError(f"the sum must be uint64 of length {self.encoded.size}")
        if list(msg.contributors) != self._survivors:
            raise MalformedMessageError("the sum's contributors are not the survivors the aggregator named")
        return decode(values, self.params.frac_bits), list(msg.contributors)


def aggregate_as_data_party(
    chan: Channel, values: np.ndarray, aggregator: str, data_parties: list[str], params: SecAggParams | None = None,
    step: str = STEP, *, context: str = "",
) -> tuple[np.ndarray, list[str]] | None:
    """Take part in one aggregation as ``chan.party``, one of ``data_parties`` (the job's list);
    returns the sum (float64) and whose inputs it holds when the aggregator broadcasts it, else None.
    ``context`` (e.g. a digest of a model's parameters) must be the same at every party."""
    params = params or SecAggParams()
    me = DataParty(chan.party, values, data_parties, params, context)
    # the aggregator answers within its round deadline after the slowest party: wait for that, and more
    wait = 2 * params.round_timeout_s + 30.0
    chan.send(aggregator, f"{step}/advertise", me.advertise())
    chan.disclose(step, KEYS, chan.party, aggregator, (2,))
    keys = chan.recv(aggregator, f"{step}/keys", expect=KeyList, timeout_s=wait)
    chan.disclose(step, KEY_LIST, aggregator, chan.party, (len(keys.parties), 2))
    shares = me.share(keys)
    chan.send(aggregator, f"{step}/shares", shares)
    chan.disclose(step, SHARES_OUT, chan.party, aggregator, (len(shares.to),))
    inbox = chan.recv(aggregator, f"{step}/inbox", expect=Inbox, timeout_s=wait)
    chan.disclose(step, SHARES_IN, aggregator, chan.party, (len(inbox.senders),))
    masked = me.masked(inbox)
    chan.send(aggregator, f"{step}/masked", masked)
    chan.disclose(step, MASKED, chan.party, aggregator, masked.values.shape)
    survivors = chan.recv(aggregator, f"{step}/survivors", expect=Survivors, timeout_s=wait)
    chan.disclose(step, SURVIVORS, aggregator, chan.party, (), survivors=len(survivors.survivors), dropped=list(survivors.dropped))
    reveal = me.reveal(survivors)
    chan.send(aggregator, f"{step}/reveal", reveal)
    chan.disclose(step, REVEALED, chan.party, aggregator, (len(reveal.seed_of) + len(reveal.key_of),))
    if not params.broadcast:
        return None
    total, contributors = me.total(chan.recv(aggregator, f"{step}/total", expect=Total, timeout_s=wait))
    chan.disclose(step, SUM_BACK, aggregator, chan.party, total.shape)
    return total, contributors
