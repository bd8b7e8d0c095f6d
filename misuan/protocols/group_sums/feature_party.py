"""The feature party's side: sum the label party's encrypted rows by its own groups; small groups merged."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from misuan.crypto.he import public_key_from_wire
from misuan.errors import MalformedMessageError
from misuan.net.channel import Channel
from misuan.protocols.group_sums.disclosures import ENCRYPTED_COLUMNS, GROUP_SUMS
from misuan.protocols.group_sums.messages import MAX_COLUMNS, STEP, EncryptedColumns, GroupSums

__all__ = ["OTHER", "merge_small_groups", "sums_feature_party"]

OTHER = "other (small groups merged)"


def merge_small_groups(groups: np.ndarray, labels: list[str], min_size: int) -> tuple[np.ndarray, list[str]]:
    """Groups below ``min_size`` rows merged into one; while that one is still below it, the smallest
    other group joins it (so no group of fewer rows is ever shown, alone or as the difference of the
    total and the others). Returns the new group index per row and the revealed groups' labels."""
    counts = np.bincount(groups, minlength=len(labels))
    merged = {g for g in range(len(labels)) if counts[g] < min_size}
    if merged:
        rest = sorted((g for g in range(len(labels)) if g not in merged), key=lambda g: (counts[g], g))
        while rest and counts[sorted(merged)].sum() < min_size:
            merged.add(rest.pop(0))
    keep = [g for g in range(len(labels)) if g not in merged]
    remap = np.full(len(labels), len(keep), dtype=np.int64)
    remap[keep] = np.arange(len(keep))
    out_labels = [labels[g] for g in keep]
    if merged and counts[sorted(merged)].sum() > 0:
        out_labels.append(OTHER if len(merged) > 1 else labels[next(iter(merged))])
    return remap[groups], out_labels


def sums_feature_party(
    chan: Channel, label_party: str, attributes: Mapping[str, tuple[np.ndarray, list[str]]], *, min_group_size: int,
    step: str = STEP,
) -> dict[str, list[str]]:
    """``attributes[name] = (group index per row, group labels)`` over the rows both parties agreed on.
    Sends one ciphertext per kept group; learns nothing (ciphertexts). Returns the groups revealed."""
    msg = chan.recv(label_party, f"{step}/columns", expect=EncryptedColumns)
    pub = public_key_from_wire(msg.public_key)
    if not 1 <= msg.n_columns <= MAX_COLUMNS or msg.slot_bits * msg.n_columns > pub.plaintext_bits:
        raise MalformedMessageError(f"{label_party} sent {msg.n_columns} columns of {msg.slot_bits} bits: they do not fit")
    cts = pub.from_array(msg.ciphertexts)  # range-checked
    chan.disclose(step, ENCRYPTED_COLUMNS, label_party, chan.party, (len(cts),))
    names, all_labels, out = [], [], []
    for name, (groups, labels) in attributes.items():
        if len(groups) != len(cts):
            raise MalformedMessageError(f"{label_party} encrypted {len(cts)} rows, this party holds {len(groups)}")
        idx, kept = merge_small_groups(np.asarray(groups, dtype=np.int64), labels, min_group_size)
        sums = pub.bin_sums(cts, idx, len(kept))
        out += pub.rerandomize_many(sums)
        names.append(name)
        all_labels.append(kept)
    chan.send(label_party, f"{step}/sums", GroupSums(names, all_labels, pub.to_array(out)))
    chan.disclose(step, GROUP_SUMS, chan.party, label_party, (len(out),), attributes=names)
    return dict(zip(names, all_labels, strict=True))
