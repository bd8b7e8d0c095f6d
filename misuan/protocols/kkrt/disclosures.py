"""What KKRT-PSI reveals, declared once; both sides record these entries (docs/privacy.md lists them).

The receiver (``reveal``'s party, or in mode "both" the party whose name sorts first) runs the cuckoo
table and learns the intersection; the sender evaluates the OPRF on its IDs.
"""

from __future__ import annotations

from misuan.net.disclosure import DisclosureKind

_EACH, _OTHER = "each party", "the other party"
_RECEIVER, _SENDER = "the receiver", "the sender"
_BOTH = 'reveal = "both"'

SET_SIZE = DisclosureKind("kkrt", "number of IDs in its set", "plaintext", _EACH, _OTHER)
TABLE = DisclosureKind("kkrt", "cuckoo table size and hash keys", "plaintext", _RECEIVER, _SENDER)
BASE_OT = DisclosureKind("kkrt", "base-OT points", "blinded", _EACH, _OTHER)
COLUMNS = DisclosureKind("kkrt", "OT-extension columns (its IDs' codewords, masked)", "ciphertext", _RECEIVER, _SENDER)
OUTPUTS = DisclosureKind(
    "kkrt", "OPRF values of its IDs (3 per ID, in a secret random order)", "blinded", _SENDER, _RECEIVER
)
INTERSECTION = DisclosureKind(
    "kkrt", "intersection, by matching OPRF values (which of its IDs are in both sets)", "plaintext", _SENDER, _RECEIVER
)
INTERSECTION_BACK = DisclosureKind(
    "kkrt", "intersection returned to the sender (which of the sender's IDs are shared)", "plaintext", _RECEIVER, _SENDER,
    _BOTH,
)

RESUMED = DisclosureKind(
    "kkrt", "buckets its kept run had finished (a resumed run)", "plaintext", _EACH, _OTHER,
    "a run resumed from a work directory (kkrt_psi_spilled)",
)

DISCLOSURES = (SET_SIZE, TABLE, BASE_OT, COLUMNS, OUTPUTS, INTERSECTION, INTERSECTION_BACK, RESUMED)
