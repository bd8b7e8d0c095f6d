"""Finding equal values in PSI: repeated IDs among a party's own hashes, matched digests across parties."""

from __future__ import annotations

import numpy as np

from misuan.crypto.ecdh import POINT_BYTES
from misuan.errors import DuplicateIdError, MalformedMessageError
from misuan.protocols.psi.ids import example_rows
from misuan.protocols.psi.messages import DIGEST_BYTES


def check_duplicates(points: np.ndarray, values: list[str], order: np.ndarray) -> None:
    """Raise :class:`DuplicateIdError` if two rows hash to the same point (equal normalised IDs).

    ``points[i]`` is the hash of row ``order[i]``.
    """
    if points.size < 2:
        return
    prefix = points.view("<u8").reshape(-1, POINT_BYTES // 8)[:, 0]  # H(id) is uniform: 64 bits sort well
    sorted_prefix = np.sort(prefix)
    repeated = np.unique(sorted_prefix[1:][sorted_prefix[1:] == sorted_prefix[:-1]])
    if repeated.size == 0:
        return
    rows_by_point: dict[bytes, list[int]] = {}
    for i in np.flatnonzero(np.isin(prefix, repeated)).tolist():
        rows_by_point.setdefault(points[i : i + 1].tobytes(), []).append(int(order[i]))
    groups = sorted(sorted(rows) for rows in rows_by_point.values() if len(rows) > 1)
    if groups:
        shown = "; ".join(f"{example_rows(rows, values)}" for rows in groups[:5])
        extra = f" (and {len(groups) - 5} more groups)" if len(groups) > 5 else ""
        raise DuplicateIdError(
            f"{sum(len(g) for g in groups)} rows repeat {len(groups)} IDs after normalisation: {shown}{extra}; "
            "deduplicate the ID column before PSI"
        )


def match_digests(own: np.ndarray, theirs: np.ndarray, peer: str) -> np.ndarray:
    """Positions in ``own`` of digests that also occur in ``theirs``, sorted by digest value.

    Fast path on 64-bit prefixes (digests are uniform); if any prefix repeats on either side, the
    exact path sorts the full digests and refuses repeated values from one side.
    """
    if own.size == 0 or theirs.size == 0:
        return np.empty(0, dtype=np.int64)
    own_key = np.ascontiguousarray(own.view("<u8").reshape(-1, DIGEST_BYTES // 8)[:, 0])
    their_order = np.argsort(theirs.view("<u8").reshape(-1, DIGEST_BYTES // 8)[:, 0])
    their_key = theirs.view("<u8").reshape(-1, DIGEST_BYTES // 8)[their_order, 0]
    if (their_key[1:] == their_key[:-1]).any() or _has_repeats(own_key):
        return _match_exact(own, theirs, peer)
    # where each own prefix would sit among the peer's; a hit needs the full digest to agree too
    pos = np.minimum(np.searchsorted(their_key, own_key), their_key.size - 1)
    candidates = np.flatnonzero(their_key[pos] == own_key)
    candidates = candidates[own[candidates] == theirs[their_order[pos[candidates]]]]
    return candidates[np.argsort(own[candidates], kind="stable")].astype(np.int64)


def _has_repeats(keys: np.ndarray) -> bool:
    ranked = np.sort(keys)
    return bool((ranked[1:] == ranked[:-1]).any())


def _match_exact(own: np.ndarray, theirs: np.ndarray, peer: str) -> np.ndarray:
    both = np.concatenate([own, theirs])
    order = np.argsort(both, kind="stable")
    ranked = both[order]
    equal = np.flatnonzero(ranked[1:] == ranked[:-1])
    first, second = order[equal], order[equal + 1]
    n = own.size
    if ((first < n) == (second < n)).any() or (equal[1:] == equal[:-1] + 1).any():
        raise MalformedMessageError(f"{peer}'s doubly-blinded values repeat: its set or its replies are not valid")
    return np.where(first < n, first, second).astype(np.int64)
