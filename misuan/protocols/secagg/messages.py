"""The wire messages of secure aggregation; their names are part of the protocol (``PROTOCOL``'s version).

Every message goes between a data party and the aggregator (a star): data parties never talk to
each other directly; what one addresses to another is encrypted to it and relayed.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from misuan.net import wire
from misuan.net.protocol import ProtocolInfo

PROTOCOL = ProtocolInfo("secagg", 1, "secure aggregation with dropouts (Bonawitz et al. 2017, semi-honest)")
STEP = "secagg"


@wire.message("secagg.Advertise")
@dataclasses.dataclass
class Advertise:
    version: int  # PROTOCOL.version
    length: int  # entries of the vector to sum
    frac_bits: int
    max_abs: float  # bound on each entry (with frac_bits and the party count: the sum cannot wrap)
    context: str  # what the aggregation is for (e.g. a digest of a model's parameters): equal at every party
    share_key: bytes  # X25519 public key for encrypting Shamir shares to this party (32 bytes)
    mask_key: bytes  # X25519 public key for the pairwise masks (32 bytes)


@wire.message("secagg.KeyList")
@dataclasses.dataclass
class KeyList:
    session: bytes  # 16 random bytes from the aggregator: mixed into every key of this round
    threshold: int
    parties: list[str]  # the data parties that advertised keys, sorted (a party's index + 1 is its share x)
    share_keys: list[bytes]
    mask_keys: list[bytes]


@wire.message("secagg.Shares")
@dataclasses.dataclass
class Shares:
    to: list[str]  # one AES-GCM ciphertext for each other data party of the key list
    ciphertexts: list[bytes]


@wire.message("secagg.Inbox")
@dataclasses.dataclass
class Inbox:
    senders: list[str]  # the data parties that sent shares (this one excluded), in key-list order
    ciphertexts: list[bytes]  # what each addressed to this party


@wire.message("secagg.Masked")
@dataclasses.dataclass
class Masked:
    values: np.ndarray  # uint64: the encoded input plus its self mask and pairwise masks


@wire.message("secagg.Survivors")
@dataclasses.dataclass
class Survivors:
    survivors: list[str]  # data parties whose masked input arrived
    dropped: list[str]  # data parties that sent shares but no masked input


@wire.message("secagg.Reveal")
@dataclasses.dataclass
class Reveal:
    seed_of: list[str]  # survivors whose self-mask seed share this is
    seed_shares: list[bytes]
    key_of: list[str]  # dropped parties whose mask-key share this is
    key_shares: list[bytes]


@wire.message("secagg.Total")
@dataclasses.dataclass
class Total:
    values: np.ndarray  # uint64: the sum of the survivors' encoded inputs
    contributors: list[str]  # whose inputs it sums
