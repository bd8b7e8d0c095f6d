"""The job runner's use of ledger anchors (:mod:`misuan.crypto.anchor`): checked at start, exchanged at the end.

Before a job appends anything to a party's ledger:

1. :func:`check_against_job_states`: the ledger must still hold the head every earlier job of the
   party recorded in its ``state.json`` (``ledger_length``, ``ledger_head``); a ledger behind or
   beside it was truncated or rewritten (:class:`LedgerTamperedError`, exit 8).
2. :func:`check_held_anchors`: each peer sends the newest anchor it holds of this party's ledger
   (``job.HeldAnchor``), and the ledger must contain that row with that hash. A party cannot
   check its peer's ledger this way, only its own, so a peer that deleted rows is stopped by its own
   runner; a modified runner is not, but its peer still holds the signed anchor for an auditor.

At the end of a job, after the last step, :func:`exchange_anchors`: each party signs its (length,
head) with its node key and sends it to every peer (``job.LedgerAnchor``), which verifies the
signature (and that the certificate names the sender and is the job CA's) and keeps it; both keep
a copy in their ledger's ``anchors`` table. Nothing is appended to the disclosure chain after the
signature, so the anchor covers every disclosure of the job.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from misuan.audit.ledger import GENESIS_HASH, Ledger
from misuan.crypto.anchor import AnchorSigner, LedgerAnchor, verify_anchor
from misuan.errors import LedgerTamperedError
from misuan.net import wire
from misuan.net.channel import Channel

__all__ = [
    "ANCHOR_STEP",
    "HELD_ANCHOR_STEP",
    "HeldAnchor",
    "LedgerAnchorMessage",
    "anchor_signer",
    "check_against_job_states",
    "check_held_anchors",
    "exchange_anchors",
]

HELD_ANCHOR_STEP = "job/held-anchor"
ANCHOR_STEP = "job/anchor"
_ANCHOR_BYTES = 32 << 10  # an anchor carries one certificate: a few hundred bytes to 2 KiB


@wire.message("job.HeldAnchor", max_bytes=_ANCHOR_BYTES)
@dataclasses.dataclass
class HeldAnchor:
    """The newest anchor the sender holds of the recipient's ledger (length 0: none yet)."""

    length: int
    head: str
    job_id: str  # the job at whose end the recipient signed it


@wire.message("job.LedgerAnchor", max_bytes=_ANCHOR_BYTES)
@dataclasses.dataclass
class LedgerAnchorMessage:
    """:class:`~misuan.crypto.anchor.LedgerAnchor` on the wire: the sender's signed ledger head."""

    job_id: str
    signer: str
    length: int
    head: str
    signed_at: str
    key_kind: str
    public_key: str
    signature: str

    def anchor(self) -> LedgerAnchor:
        return LedgerAnchor(**dataclasses.asdict(self))


def anchor_signer(channel: Channel, party_dir: Path) -> AnchorSigner:
    """The party's TLS key when its channel has one (gRPC), else the party directory's own key."""
    identity = channel.identity()
    if identity is not None:
        return AnchorSigner.from_tls(channel.party, identity.cert, identity.key)
    return AnchorSigner.node_key(channel.party, party_dir)


def check_against_job_states(ledger: Ledger, party_dir: Path) -> None:
    """The ledger still holds the head each of the party's jobs recorded in its ``state.json``."""
    jobs = Path(party_dir) / "jobs"
    for state_path in sorted(jobs.glob("*/state.json")) if jobs.is_dir() else []:
        try:
            state = json.loads(state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # a state file is written atomically: an unreadable one is not ours to judge here
        head, length = state.get("ledger_head"), state.get("ledger_length")
        if not isinstance(head, str):
            continue
        source = f"the state.json of job {state_path.parent.name!r}"
        if isinstance(length, int) and not isinstance(length, bool):
            ledger.check_anchor(length, head, source)
        elif not ledger.holds_hash(head):
            # written before lengths were kept: the head must still be one of the rows
            raise LedgerTamperedError(
                f"the ledger no longer holds hash {head[:16]}... that {source} recorded: rows were removed or rewritten"
            )


def check_held_anchors(channel: Channel, ledger: Ledger) -> None:
    """Swap with every peer the newest anchor each holds of the other; check this party's ledger against it."""
    for peer in channel.peers:
        held = ledger.anchors(signer=peer, holder=channel.party)
        newest = held[-1] if held else None
        channel.send(peer, HELD_ANCHOR_STEP, HeldAnchor(
            newest.length if newest else 0, newest.head if newest else GENESIS_HASH, newest.job_id if newest else "",
        ))
    for peer in channel.peers:
        theirs = channel.recv(peer, HELD_ANCHOR_STEP, expect=HeldAnchor)
        if theirs.length < 0 or len(theirs.head) != 64:
            raise LedgerTamperedError(f"{peer} sent a malformed anchor of this party's ledger")
        ledger.check_anchor(
            theirs.length, theirs.head, f"the anchor {peer} holds (signed by {channel.party} at the end of job "
            f"{theirs.job_id!r})",
        )


def exchange_anchors(channel: Channel, ledger: Ledger, signer: AnchorSigner) -> LedgerAnchor:
    """Sign this party's ledger head, send it to every peer, verify and keep theirs; returns ours."""
    length, head = ledger.durable_head()
    ours = signer.sign(channel.job_id, length, head)
    for peer in channel.peers:
        channel.send(peer, ANCHOR_STEP, LedgerAnchorMessage(**ours.as_dict()))
    identity = channel.identity()
    for peer in channel.peers:
        theirs = channel.recv(peer, ANCHOR_STEP, expect=LedgerAnchorMessage).anchor()
        verify_anchor(
            theirs, signer=peer, ca_pem=identity.ca if identity is not None else None, anchors=channel.peer_anchors(peer)
        )
        if theirs.job_id != channel.job_id:
            raise LedgerTamperedError(f"{peer}'s ledger anchor is for job {theirs.job_id!r}, not {channel.job_id!r}")
        ledger.record_anchor(theirs, holder=channel.party)
        ledger.record_anchor(ours, holder=peer)
    return ours
