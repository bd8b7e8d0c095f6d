"""What secure aggregation reveals, declared once; the parties record these entries (docs/privacy.md lists them)."""

from __future__ import annotations

from misuan.net.disclosure import DisclosureKind

_P = "secagg"
DATA, AGG = "each data party", "the aggregator"

KEYS = DisclosureKind(_P, "its two X25519 public keys for the round", "plaintext", DATA, AGG)
KEY_LIST = DisclosureKind(_P, "the data parties' public keys and who advertised them", "plaintext", AGG, DATA)
SHARES_OUT = DisclosureKind(_P, "Shamir shares of its self-mask seed and mask key, each encrypted to one data party",
                            "ciphertext", DATA, AGG)
SHARES_IN = DisclosureKind(_P, "the shares other data parties encrypted to it", "ciphertext", AGG, DATA)
MASKED = DisclosureKind(_P, "its input vector under a self mask and pairwise masks", "blinded", DATA, AGG)
SURVIVORS = DisclosureKind(_P, "which data parties' masked inputs arrived and which dropped out", "plaintext", AGG, DATA)
REVEALED = DisclosureKind(_P, "its shares of the survivors' self-mask seeds and the dropped parties' mask keys",
                          "blinded", DATA, AGG)
SUM = DisclosureKind(_P, "the sum of the surviving data parties' vectors", "aggregate", "all", AGG)
SUM_BACK = DisclosureKind(_P, "the sum of the surviving data parties' vectors, sent back", "aggregate", AGG, DATA,
                          when="broadcast = true")

DISCLOSURES = (KEYS, KEY_LIST, SHARES_OUT, SHARES_IN, MASKED, SURVIVORS, REVEALED, SUM, SUM_BACK)
