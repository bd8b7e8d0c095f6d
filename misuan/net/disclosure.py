"""What a party reveals to another, as the protocols record it at run time.

This is the interface only; :mod:`misuan.audit.ledger` stores entries durably (SQLite, hash-chained).
It sits in ``net/`` so that protocols, which may not import ``audit/``, can record through the channel.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from typing import Any, Protocol


@dataclasses.dataclass(frozen=True)
class Disclosure:
    """One value revealed by ``discloser`` to ``recipient`` in ``step`` of ``job_id``.

    ``what`` names the value in domain terms ("intersection size", "per-bin positive counts");
    ``shape`` is the shape of what was revealed (``()`` for a scalar); ``form`` says whether the
    recipient can read it: ``plaintext``, ``ciphertext`` (encrypted under a key the recipient lacks),
    ``blinded`` (curve points under the sender's secret exponent) or ``aggregate`` (a plaintext
    aggregate over several rows). ``detail`` holds small scalar facts (a count, a bin threshold).
    """

    job_id: str
    step: str
    discloser: str
    recipient: str
    what: str
    shape: tuple[int, ...]
    form: str = "plaintext"
    detail: dict[str, Any] = dataclasses.field(default_factory=dict)

    FORMS = ("plaintext", "ciphertext", "blinded", "aggregate")

    def __post_init__(self) -> None:
        if self.form not in self.FORMS:
            raise ValueError(f"disclosure form must be one of {self.FORMS}, not {self.form!r}")


@dataclasses.dataclass(frozen=True)
class DisclosureKind:
    """One entry of a protocol's disclosure catalogue: declared once, recorded by both sides.

    ``discloser`` and ``recipient`` are *roles* in the protocol's terms (``label_party``,
    ``feature_party``, ``each party``, ``all`` for a joint result); the channel records the actual
    party names. ``when`` says under which parameter the disclosure happens ("always" by default).
    ``docs/privacy.md`` lists every catalogue as the table :func:`catalogue_table` writes, and a
    test checks that a run records exactly catalogued kinds and that the document agrees.
    """

    protocol: str
    what: str
    form: str
    discloser: str
    recipient: str
    when: str = "always"

    def __post_init__(self) -> None:
        if self.form not in Disclosure.FORMS:
            raise ValueError(f"disclosure form must be one of {Disclosure.FORMS}, not {self.form!r}")


# The ``when`` of a catalogue entry that records a failed consistency check rather than a new
# disclosure: the values the peer sent, which this party's own data contradicts. Only the party that
# ran the check records it, and only when the check fails, so no honest run shows one.
CHECK_FAILED = "a consistency check fails"


def catalogue_table(kinds: Sequence[DisclosureKind]) -> str:
    """The Markdown table of a protocol's catalogue, as ``docs/privacy.md`` shows it."""
    lines = ["| what | form | from | to | when |", "|---|---|---|---|---|"]
    lines += [f"| {k.what} | {k.form} | {k.discloser} | {k.recipient} | {k.when} |" for k in kinds]
    return "\n".join(lines) + "\n"


class DisclosureRecorder(Protocol):
    def record(self, disclosure: Disclosure) -> None: ...


class MemoryRecorder:
    """Keeps disclosures in a list; for tests, notebooks and in-process simulation."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.entries: list[Disclosure] = []

    def record(self, disclosure: Disclosure) -> None:
        with self._lock:
            self.entries.append(disclosure)

    def learned_by(self, party: str) -> list[Disclosure]:
        return [d for d in self.entries if d.recipient == party]
