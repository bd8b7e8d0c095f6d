"""What PSI reveals, declared once; both sides record these entries (docs/privacy.md lists them).

PSI is symmetric: each party runs the same role, so the catalogue names "each party" and "the other
party"; ``when`` says under which ``reveal`` mode an entry is recorded.
"""

from __future__ import annotations

from misuan.net.disclosure import DisclosureKind
from misuan.protocols.psi.messages import DIGEST_BYTES

_EACH, _OTHER = "each party", "the other party"
_LEARNER = "the other party, if it learns the intersection"
_ROWS_REVEALED = 'reveal = "both" or the recipient\'s name'
_SIZE_ONLY = 'reveal = "size"'

SET_SIZE = DisclosureKind("psi", "ID set size", "plaintext", _EACH, _OTHER)
BLINDED_IDS = DisclosureKind("psi", "blinded IDs (under its key)", "blinded", _EACH, _OTHER)
DIGESTS_IN_ORDER = DisclosureKind(
    "psi", f"doubly-blinded ID digests ({DIGEST_BYTES} bytes, in the recipient's order)", "blinded",
    _EACH, _LEARNER, _ROWS_REVEALED,
)
DIGESTS_SORTED = DisclosureKind(
    "psi", f"doubly-blinded ID digests ({DIGEST_BYTES} bytes, sorted, unlinkable to rows)", "blinded",
    _EACH, _OTHER, _SIZE_ONLY,
)
# recorded with shape (size,) and detail size; in one-sided mode the party that learns nothing
# records it too, with shape () and size_known=False
INTERSECTION = DisclosureKind(
    "psi", "intersection (which of its IDs are in both sets)", "plaintext", _EACH, _LEARNER, _ROWS_REVEALED
)
INTERSECTION_SIZE = DisclosureKind("psi", "intersection size", "plaintext", _EACH, _OTHER, _SIZE_ONLY)

DISCLOSURES = (SET_SIZE, BLINDED_IDS, DIGESTS_IN_ORDER, DIGESTS_SORTED, INTERSECTION, INTERSECTION_SIZE)
