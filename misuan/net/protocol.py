"""What names a protocol on the wire: its name and version, compared before a job runs.

Every protocol package declares one :class:`ProtocolInfo` (``PROTOCOL`` in its ``messages.py``).
The node's job hello carries the versions of the protocols a job's steps use, and a peer on another
version is refused with one line naming both (:func:`check_versions`), before any step starts.
Bump a protocol's version whenever a message, its meaning or the order of messages changes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from misuan.errors import ProtocolVersionError

__all__ = [
    "AGGREGATOR", "DATA_PARTY", "FEATURE_PARTY", "HORIZONTAL_ROLES", "LABEL_PARTY", "ROLES", "VERTICAL_ROLES",
    "ProtocolInfo", "check_versions",
]

# one spelling of the roles for the job spec, the protocols and their catalogues.
# vertical learning: the same customers, different columns
LABEL_PARTY = "label_party"  # holds the labels (and the decryption key)
FEATURE_PARTY = "feature_party"  # contributes features only
VERTICAL_ROLES = (LABEL_PARTY, FEATURE_PARTY)
# horizontal learning: different customers, the same columns, each with its own labels
DATA_PARTY = "data_party"  # holds rows with labels; sends only masked vectors
AGGREGATOR = "aggregator"  # holds no data; learns the sums of the data parties' vectors
HORIZONTAL_ROLES = (DATA_PARTY, AGGREGATOR)
ROLES = VERTICAL_ROLES + HORIZONTAL_ROLES


@dataclasses.dataclass(frozen=True)
class ProtocolInfo:
    name: str  # also the prefix of its wire message names: "woe" -> "woe.BinSums"
    version: int
    summary: str


def check_versions(ours: Mapping[str, int], theirs: Mapping[str, int], peer: str, here: str = "", there: str = "") -> None:
    """Refuse a peer whose version of any protocol both use differs, or that lacks one we need."""
    for name in sorted(ours):
        if name not in theirs:
            raise ProtocolVersionError(
                f"{peer} does not speak protocol {name!r} (this node speaks {name} v{ours[name]}"
                f"{_builds(here, there)}): upgrade {peer}'s misuan"
            )
        if theirs[name] != ours[name]:
            older = peer if theirs[name] < ours[name] else "this node"
            raise ProtocolVersionError(
                f"{peer} speaks {name} v{theirs[name]}, this node speaks {name} v{ours[name]}"
                f"{_builds(here, there)}: upgrade {older} so both run the same version"
            )


def _builds(here: str, there: str) -> str:
    return f"; misuan {here} here, {there} there" if here and there else ""
