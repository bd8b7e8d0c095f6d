"""The label party's side: encrypt its per-row columns packed, decrypt the group sums."""

from __future__ import annotations

import numpy as np

from misuan.crypto.he import MIN_BITS, PrivateKey, PublicKey, generate_keypair
from misuan.errors import ConfigError, MalformedMessageError
from misuan.net.channel import Channel
from misuan.protocols.group_sums.disclosures import ENCRYPTED_COLUMNS, GROUP_SUMS
from misuan.protocols.group_sums.messages import MAX_COLUMNS, MAX_GROUPS, STEP, EncryptedColumns, GroupSums

__all__ = ["sums_label_party"]


def _pack(columns: np.ndarray, slot_bits: int) -> list[int]:
    """Each row's non-negative integer columns in one integer, column 0 in the lowest slot."""
    out = np.zeros(columns.shape[0], dtype=object)
    for j in range(columns.shape[1] - 1, -1, -1):
        out = out * (1 << slot_bits) + columns[:, j].astype(object)
    return [int(v) for v in out]


def sums_label_party(
    chan: Channel, feature_party: str, columns: np.ndarray, *, keypair: tuple[PublicKey, PrivateKey] | None = None,
    step: str = STEP,
) -> dict[str, dict[str, np.ndarray]]:
    """``columns``: (rows, k) non-negative integers (0/1 flags, a PD in fixed point) of the agreed rows.
    Returns, per attribute of the feature party, group label -> the k column sums (column 0 of ones: the count)."""
    cols = np.asarray(columns)
    if cols.ndim != 2 or not 1 <= cols.shape[1] <= MAX_COLUMNS or cols.dtype.kind not in "iu" or (cols < 0).any():
        raise ConfigError("columns must be a (rows, 1..16) array of non-negative integers")
    pub, priv = keypair or generate_keypair("ou", 2048)
    if pub.bits < MIN_BITS:
        raise ConfigError(f"a key of {pub.bits} bits is below {MIN_BITS}")
    top = int(cols.max(initial=0)) * max(1, cols.shape[0])
    slot_bits = max(8, top.bit_length() + 1)
    if slot_bits * cols.shape[1] > pub.plaintext_bits:
        raise ConfigError(f"{cols.shape[1]} columns of {slot_bits} bits do not fit the key's plaintext")
    cts = pub.encrypt_ints(_pack(cols, slot_bits))
    chan.send(feature_party, f"{step}/columns", EncryptedColumns(pub.to_wire(), cols.shape[1], slot_bits, pub.to_array(cts)))
    chan.disclose(step, ENCRYPTED_COLUMNS, chan.party, feature_party, (len(cts),))
    msg = chan.recv(feature_party, f"{step}/sums", expect=GroupSums)
    n = sum(len(g) for g in msg.groups) if isinstance(msg.groups, list) else -1
    if (not isinstance(msg.groups, list) or len(msg.groups) != len(msg.attributes) or not 0 <= n <= MAX_GROUPS
            or msg.ciphertexts.shape != (n,)):
        raise MalformedMessageError(f"{feature_party} sent group sums that do not match its group list")
    plain = priv.decrypt_ints(pub.from_array(msg.ciphertexts))
    chan.disclose(step, GROUP_SUMS, feature_party, chan.party, (n,), attributes=list(msg.attributes))
    mask = (1 << slot_bits) - 1
    out: dict[str, dict[str, np.ndarray]] = {}
    pos = 0
    for name, labels in zip(msg.attributes, msg.groups, strict=True):
        out[str(name)] = {}
        for label in labels:
            v = plain[pos]
            pos += 1
            if v >> (slot_bits * cols.shape[1]):
                raise MalformedMessageError(f"{feature_party}'s sum of group {label!r} overflows the packing")
            out[str(name)][str(label)] = np.array([(v >> (slot_bits * j)) & mask for j in range(cols.shape[1])], dtype=object)
    return out
