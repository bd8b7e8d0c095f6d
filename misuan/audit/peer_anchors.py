"""Checking a ledger against what lies outside it: a head kept elsewhere, the anchors a peer holds.

``misuan ledger verify`` uses these. :func:`parse_expected_head` reads ``--expected-head``
(``HASH`` or ``LENGTH:HASH``); :func:`check_peer_anchors` checks a ledger against the anchors found
in a peer's export (``misuan ledger export``): each anchor this ledger's party signed and the peer
holds must verify (signature, and the certificate names the signer) and name a row of this ledger
with the very hash it vouches for. A ledger shorter than an anchor was truncated; one whose row
differs was rewritten, whatever hashes were recomputed after it. See docs/privacy.md for what this
proves and what it does not.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

from misuan.audit.ledger import Ledger, verify_anchor_rows, verify_rows
from misuan.crypto.anchor import LedgerAnchor, verify_anchor
from misuan.errors import ConfigError, LedgerError

__all__ = ["PeerAnchorReport", "check_peer_anchors", "load_export", "parse_expected_head"]

_HEAD = re.compile(r"^(?:(\d+):)?([0-9a-f]{64})$")


def parse_expected_head(text: str) -> tuple[int | None, str]:
    """``HASH`` or ``LENGTH:HASH`` (as ``misuan ledger verify`` prints them) -> (length or None, hash)."""
    m = _HEAD.match(text.strip())
    if m is None:
        raise ConfigError(f"--expected-head: give a 64-hex-digit hash, optionally as LENGTH:HASH (got {text!r})")
    return (int(m.group(1)) if m.group(1) is not None else None), m.group(2)


def load_export(path: Path) -> dict[str, Any]:
    """A ledger export (``misuan ledger export``), with its own chains verified."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the ledger export {path}: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != "misuan-ledger" or not isinstance(doc.get("rows"), list):
        raise ConfigError(f"{path} is not a misuan ledger export")
    if doc.get("complete"):
        verify_rows(doc["rows"])
    verify_anchor_rows(doc.get("anchors") or [])
    return doc


@dataclasses.dataclass(frozen=True)
class PeerAnchorReport:
    peer: str
    checked: int  # anchors of this ledger the peer holds, all consistent
    newest: LedgerAnchor


def check_peer_anchors(ledger: Ledger, doc: dict[str, Any], party: str | None = None) -> PeerAnchorReport:
    """Check ``ledger`` against every anchor of it held in the peer's export ``doc``.

    ``party`` is this ledger's party (default: the name the ledger keeps). Raises
    :class:`LedgerTamperedError` naming the anchor that the ledger contradicts, or
    :class:`LedgerError` when the export holds no anchor of this party's ledger.
    """
    me = party or ledger.party
    if me is None:
        raise ConfigError("this ledger does not say whose it is: pass --party NAME")
    peer = str(doc.get("party") or "the peer")
    fields = [f.name for f in dataclasses.fields(LedgerAnchor)]
    held = [
        LedgerAnchor(**{k: row[k] for k in fields})
        for row in doc.get("anchors") or []
        if row.get("signer") == me and (doc.get("party") is None or row.get("holder") == doc.get("party"))
    ]
    if not held:
        raise LedgerError(f"{peer}'s export holds no anchor signed by {me!r}: nothing to check this ledger against")
    for anchor in held:
        verify_anchor(anchor, signer=me)
        source = f"{me}'s anchor held by {peer} (job {anchor.job_id!r}, signed {anchor.signed_at[:19]})"
        ledger.check_anchor(anchor.length, anchor.head, source)
    return PeerAnchorReport(peer, len(held), max(held, key=lambda a: a.length))
