"""PSI's parameters, declared once (:mod:`misuan.params`): the job spec's ``params`` of a ``psi`` step."""

from __future__ import annotations

import dataclasses
from typing import Literal

from misuan.params import check_params, param
from misuan.protocols.psi.ids import IdNormalization
from misuan.protocols.psi.messages import MAX_BATCH_SIZE

DEFAULT_BATCH_SIZE = 8192
MAX_WORKERS = 4096  # a bound on what a spec may ask for, far above any one machine's cores
PARALLEL_MIN_ROWS = 20_000  # below this, starting worker processes costs more than it saves


@dataclasses.dataclass(frozen=True)
class PsiParams:
    """What both parties must agree on (``reveal``, ``normalize``) and how each runs (``batch_size``, ``workers``).

    ``reveal`` is one of ``"both"``, ``"size"`` or a party's name; which names are valid depends on
    the parties, so :func:`~misuan.protocols.psi.psi` (and the step's check) test it against them.
    """

    reveal: str = param(
        "both", 'who learns the intersection: "both", "size" (each learns only its size) or the one party that learns it'
    )
    protocol: Literal["auto", "kkrt", "ecdh"] = param(
        "auto", 'the PSI protocol: "kkrt" (OT extension, AES: fast on any CPU), "ecdh" (X25519; the only one for '
        'reveal = "size"), or "auto": kkrt unless reveal = "size"'
    )
    normalize: IdNormalization = param(
        IdNormalization(), "how IDs are brought to one form before hashing; the same in both parties' specs"
    )
    spill: bool = param(
        False, "KKRT-PSI over ID buckets spilled to disk, resumable per bucket (memory: one bucket): for sets beyond "
        "memory; with a streamed dataset the IDs go from its column store to the buckets a chunk at a time"
    )
    batch_size: int = param(DEFAULT_BATCH_SIZE, "IDs per streamed message", ge=1, le=MAX_BATCH_SIZE)
    workers: int | None = param(
        None, f"processes for hashing and blinding (default: all cores when the sets hold {PARALLEL_MIN_ROWS:,} IDs or more)",
        ge=1, le=MAX_WORKERS,
    )

    def __post_init__(self) -> None:
        check_params(self, "psi")

    @property
    def resolved_protocol(self) -> Literal["kkrt", "ecdh"]:
        """The protocol that runs: ``protocol``, with "auto" resolved the same way on both sides."""
        if self.protocol == "auto":
            return "ecdh" if self.reveal == "size" else "kkrt"
        return self.protocol
