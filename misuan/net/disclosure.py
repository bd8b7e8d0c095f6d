"""What a party reveals to another, as the protocols record it at run time.

This is the interface only; :mod:`misuan.audit.ledger` stores entries durably (SQLite, hash-chained).
It sits in ``net/`` so that protocols, which may not import ``audit/``, can record through the channel.
"""

from __future__ import annotations

import dataclasses
import threading
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
