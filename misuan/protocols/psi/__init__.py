"""Private set intersection of customer IDs: ECDH-PSI (DDH, semi-honest), streamed, on all cores.

Two parties, each with a list of distinct customer IDs, learn which IDs they share (or only how many)
and nothing else beyond the other's set size.

Protocol (each party ``P`` with IDs ``x_1..x_n``, secret blinding key ``k_P``; group, hash and
blinding in :mod:`misuan.crypto.ecdh`: the prime-order subgroup of Curve25519 through X25519):

0. ``hello``: both send the protocol version (``PROTOCOL.version``), group, the canonical text of their
   :class:`~misuan.protocols.psi.ids.IdNormalization`, the reveal mode and their set size; each
   refuses to go on if anything but the size differs (so the two sides hash identical strings).
1. Both normalise and hash their IDs to the curve (``H``), refuse duplicate or empty IDs, put their
   rows in a secret uniformly random order ``pi_P`` and stream ``k_P * H(x)`` to the peer in batches
   (step ``blinded``).
2. Each re-blinds what it receives, ``k_Q * k_P * H(x)``, keeps the first 16 bytes (the *digest*)
   and, where the peer is to learn a result, streams the digests back (step ``doubly_blinded``):
   in the order received when the peer is to learn *which* IDs match, sorted (so unlinkable to the
   peer's rows) when it is to learn only the size.
3. A party that got its own digests back matches them against the digests it computed for the
   peer's values. Shared IDs have equal digests on both sides, so both parties list their matched
   rows sorted by digest: the same customers in the same order (``PsiResult.local_rows``).

Use (each party, over its channel; both must pass the same ``reveal`` and ``normalize``)::

    res = psi(chan, df["customer_id"], "partner",
              PsiParams(reveal="both", normalize=IdNormalization(case="casefold")))
    shared = df.iloc[res.local_rows]   # same customers, same order as on the partner's side

Reveal modes: ``"both"`` (each learns the intersection), ``"<party>"`` (only that party learns it;
the other learns nothing but the receiver's set size), ``"size"`` (each learns only its size).
Security model: semi-honest parties, DDH in the group, ``H`` a random oracle. Leakage (declared once in
:mod:`.disclosures`, listed in docs/privacy.md, recorded in the ledger on both sides): each party's
set size to the other; the intersection (as above) or its size. Blinded values are pseudorandom under DDH; the
random row order ``pi_P`` keeps the *positions* of matched values from telling the peer anything
about the sender's row order. A malicious party could lie about its set or results; not covered.

Peer messages are checked before use: sizes and offsets against the peer's ``hello``, point
encoding (32-byte canonical u-coordinates, not of small order; on the curve, tested on a random
sample of :data:`~.blinding.CURVE_CHECK_SAMPLE` values per batch, as twist points cannot hurt the key), repeated
values; violations raise :class:`~misuan.errors.MalformedMessageError`.

Performance: hashing and scalar multiplications run in a process pool (``workers``, default all
cores when the job is large) fed in order with a bounded window, while the main thread streams
batches both ways; the dominant cost is two X25519 calls per ID per party (Intel crypto_mb, eight
at a time, where available; see :mod:`misuan.crypto.ecdh`), then hashing to the curve. Memory per
party is linear and small: a peak of ~120-130 bytes per ID besides the input list (measured: 2.1 GB
per party at 10M x 10M, of which ~0.8 GB is the list of 10M ID strings); nothing is allocated from
sizes the peer announces.

Restart: the function keeps nothing on disk and every run draws fresh keys and a fresh row order,
so a run killed at any point is simply started again on both sides; results exist only once the
function returns. A caller that writes results to files must write them atomically (temporary
file, then rename) so a killed run never leaves a partial output that looks final.

As a job step (``kind = "psi"``, :mod:`misuan.node.steps.psi`): params are :class:`PsiParams`
(``reveal``, ``normalize`` as a nested table of :class:`IdNormalization` fields, identical in both
parties' specs, ``batch_size``, ``workers``); outputs ``size``/``peer_size`` (JSON) and
``local_rows`` (an ``.npy`` artefact, written atomically) that later steps use as
``df.iloc[local_rows]``. A step that did not finish is rerun on both parties, never resumed half-way.

Layout: :mod:`.messages` (wire messages, ``PROTOCOL``, limits), :mod:`.params` (:class:`PsiParams`),
:mod:`.ids` (ID types and :class:`IdNormalization`), :mod:`.disclosures` (the catalogue),
:mod:`.party` (the one role, :class:`PsiParty`, and the driver :func:`psi`), :mod:`.blinding` (the
curve work and its worker pool), :mod:`.matching` (repeated IDs, matched digests).
"""

from misuan.protocols.psi.disclosures import DISCLOSURES
from misuan.protocols.psi.ids import IdNormalization, coerce_ids, normalize_ids
from misuan.protocols.psi.messages import (
    DIGEST_BYTES,
    MAX_BATCH_SIZE,
    MAX_ROWS,
    PROTOCOL,
    STEP,
    BlindedBatch,
    DigestBatch,
    Hello,
)
from misuan.protocols.psi.params import DEFAULT_BATCH_SIZE, PARALLEL_MIN_ROWS, PsiParams
from misuan.protocols.psi.party import PsiParty, PsiResult, psi, psi_chunked

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DIGEST_BYTES",
    "DISCLOSURES",
    "MAX_BATCH_SIZE",
    "MAX_ROWS",
    "PARALLEL_MIN_ROWS",
    "PROTOCOL",
    "STEP",
    "BlindedBatch",
    "DigestBatch",
    "IdNormalization",
    "Hello",
    "PsiParams",
    "PsiParty",
    "PsiResult",
    "coerce_ids",
    "normalize_ids",
    "psi",
    "psi_chunked",
]
