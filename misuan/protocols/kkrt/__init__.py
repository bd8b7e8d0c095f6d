"""Private set intersection from oblivious transfer: KKRT16's batched OPRF with cuckoo hashing.

Kolesnikov, Kumaresan, Rosulek, Trieu, "Efficient batched oblivious PRF with applications to
private set intersection", CCS 2016. Symmetric-key work (AES, which every x86-64 CPU accelerates)
instead of two elliptic-curve multiplications per ID per party: on a 2-core AMD EPYC without
AVX-512, 1M x 1M in seconds rather than the two minutes of ECDH-PSI through OpenSSL.

Roles: the **receiver** R learns the intersection (``reveal``'s party; in mode ``"both"`` the party
whose name sorts first, which then tells the other); the **sender** S holds the OPRF key.

0. ``hello``: both send the protocol version, the canonical ID normalisation, the reveal mode,
   their set size and the fixed parameters (:mod:`.params`); anything but the size must agree.
   Both normalise their IDs (repeats are refused) and turn them into 16-byte digests: CBC-MAC
   under a key from both nonces of an injective 48-byte encoding (:mod:`.digests`).
1. R places its digests in a cuckoo table of ``n_bins`` bins with 3 AES-based hash functions (new
   keys on a failure, locally) and sends the table size, the hash keys, a session id and the
   base-OT point ``A`` (Chou-Orlandi, :mod:`misuan.crypto.ot`).
2. S draws 512 secret bits ``s`` and the pseudorandom code's keys, and answers with its base-OT
   points (choice bits ``s``) and the code keys. R gets seed pairs ``(k_i^0, k_i^1)``, S gets ``k_i^{s_i}``.
3. R streams the OT-extension columns in chunks of bins: ``u_i = G(k_i^0) ^ G(k_i^1) ^ c_i``, where
   ``c_i`` is column ``i`` of the matrix whose row ``j`` is the codeword ``C(x)`` of the digest in bin
   ``j`` (zeros for an empty bin) and ``G`` is AES-CTR. S computes ``q_i = G(k_i^{s_i}) ^ s_i u_i``,
   so that row ``j`` is ``q_j = t_j ^ (C(x_j) & s)`` with ``t_j`` the rows of ``G(k_i^0)``.
4. S computes, for each of its digests ``y`` in a secret random order and each of its 3 candidate
   bins ``b = h_i(y)``, ``F(b, i, y) = H(b, i, q_b ^ (C(y) & s))`` truncated to
   :func:`.params.output_bytes` bytes, as the chunk holding ``b`` arrives (the two parties work at
   the same time, one chunk apart), and sends them all once the last chunk is in.
   R's own value for the digest in bin ``b``, placed there by hash function ``i``, is
   ``H(b, i, t_b)``: equal exactly when ``y = x_b``
   (up to a false match, below 2^-40 in all). R matches them.
5. In mode ``"both"``, R sends back the positions (in S's random order) of S's matched digests;
   both then list the shared rows sorted by digest, the same customers in the same order.

Security model: semi-honest parties; computational security 128 bits (AES-128, the 512-bit code,
Chou-Orlandi base OTs under CDH in the Ed25519 group with SHA-256 as a random oracle), statistical
40 bits (cuckoo failure, false matches); ``H`` is the tweakable fixed-key AES hash of
:mod:`misuan.crypto.aes_prg` (ideal-cipher assumption). **Leakage** (declared in :mod:`.disclosures`,
listed in docs/privacy.md, recorded on both sides): each party's set size to the other; the
cuckoo table size (a function of R's size) and hash keys to S; the intersection to R, and to S in
mode ``"both"``. S's OPRF values of IDs that R does not hold are pseudorandom to R; R's columns are
masked by seeds S lacks half of. Mode ``"size"`` (only the count) is not offered: the receiver of
KKRT learns which of its own IDs matched; ECDH-PSI provides that mode.

For sets beyond memory, :mod:`.spill` (``kkrt_psi_spilled``) runs the same buckets from files on
disk, one at a time, and resumes a killed run per bucket.

Memory: the receiver holds its cuckoo table (8 bytes a bin, about 1.32 bins per ID) and its own
OPRF values; the sender ``C(y) & s`` (64 bytes an ID) and its outputs (3 values an ID); each side a
chunk of columns and rows at a time (2 MiB each), so small, reused arrays and not one pass per step
over the whole table: on the measured VM, first touches of fresh memory cost more than the AES. A
killed run is restarted from the start on both sides (fresh keys); nothing is written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import time
from collections.abc import Sequence

import numpy as np

from misuan.crypto.aes_prg import prf
from misuan.crypto.rows import take_rows
from misuan.errors import ConfigError, CryptoError, MalformedMessageError
from misuan.net.channel import Channel
from misuan.protocols.kkrt.digests import check_unique, digest_order, digests_of, dummies, encode_ids
from misuan.protocols.kkrt.disclosures import (
    BASE_OT,
    COLUMNS,
    DISCLOSURES,
    INTERSECTION,
    INTERSECTION_BACK,
    OUTPUTS,
    SET_SIZE,
    TABLE,
)
from misuan.protocols.kkrt.messages import (
    PROTOCOL,
    Columns,
    Hello,
    Matches,
    Outputs,
    ReceiverSetup,
    SenderSetup,
)
from misuan.protocols.kkrt.params import BUCKET_ITEMS, CODE_BITS, HASHES, MAX_ROWS, STAT_BITS, output_bytes
from misuan.protocols.kkrt.receiver import OprfReceiver
from misuan.protocols.kkrt.sender import OprfSender

__all__ = [
    "DISCLOSURES", "PROTOCOL", "KkrtResult", "bucket_as_receiver", "bucket_as_sender", "bucket_cap", "bucket_rows",
    "buckets_for", "check_hello", "encode_ids", "kkrt_psi", "padded", "receiver_of", "session_keys",
]

@dataclasses.dataclass
class KkrtResult:
    """What this party learns: the shared rows (None where it learns nothing), the sizes, timings."""

    local_rows: np.ndarray | None
    size: int | None
    peer_size: int
    timings: dict[str, float]


def receiver_of(reveal: str, parties: Sequence[str]) -> str:
    """The party that runs the cuckoo table: the one that learns, or in mode "both" the first by name."""
    return reveal if reveal != "both" else sorted(parties)[0]


def _check_hello(ours: Hello, theirs: Hello, peer: str) -> None:
    for field in ("version", "normalization", "reveal", "code_bits", "hashes", "stat_bits"):
        if getattr(ours, field) != getattr(theirs, field):
            raise ConfigError(
                f"{peer} runs KKRT-PSI with {field} {getattr(theirs, field)!r}, this party with {getattr(ours, field)!r}: "
                "both must use the same spec"
            )
    if not (isinstance(theirs.n_rows, int) and 0 <= theirs.n_rows <= MAX_ROWS):
        raise MalformedMessageError(f"{peer} announced {theirs.n_rows!r} IDs")
    nonce = np.asarray(theirs.nonce)
    if nonce.dtype != np.uint8 or nonce.shape != (16,):
        raise MalformedMessageError(f"{peer}'s hello must carry a 16-byte nonce")


def kkrt_psi(
    chan: Channel, encoded: np.ndarray | list[np.ndarray], peer: str, *, reveal: str, normalization: str,
    step: str = "psi",
) -> KkrtResult:
    """Run KKRT-PSI with ``peer`` on this party's normalised IDs, encoded by :func:`encode_ids`
    (``normalization`` names how they were normalised and must equal the peer's); see the module
    docstring. ``reveal``: "both" or the learning party. Rows in the result index ``encoded``.
    Given as a one-element list, the encodings are taken out of it and freed once digested (48 bytes
    an ID), whatever the Python version keeps on the caller's stack.
    :func:`misuan.protocols.psi.psi` with ``protocol = "kkrt"`` normalises, encodes and calls this."""
    if isinstance(encoded, list):
        encoded = encoded.pop()
    if reveal not in ("both", chan.party, peer):
        raise ConfigError(f"KKRT-PSI reveals to 'both', {chan.party!r} or {peer!r}, not {reveal!r} (use ECDH-PSI for 'size')")
    t0 = time.perf_counter()
    check_unique(encoded)
    nonce = os.urandom(16)
    mine = Hello(PROTOCOL.version, normalization, reveal, encoded.shape[0], CODE_BITS, HASHES, STAT_BITS,
                 np.frombuffer(nonce, dtype=np.uint8))
    chan.send(peer, f"{step}/hello", mine)
    chan.disclose(step, SET_SIZE, chan.party, peer, (), n=mine.n_rows)
    theirs = chan.recv(peer, f"{step}/hello", expect=Hello)
    _check_hello(mine, theirs, peer)
    chan.disclose(step, SET_SIZE, peer, chan.party, (), n=theirs.n_rows)
    receiver = receiver_of(reveal, (chan.party, peer))
    nonces = (nonce, bytes(theirs.nonce)) if receiver == chan.party else (bytes(theirs.nonce), nonce)
    both = b"".join(nonces)
    digest_key, bucket_key = session_keys(both)
    digests = digests_of(encoded, digest_key)
    del encoded  # 48 bytes an ID: freed here when the caller kept no reference (psi passes a list)
    n_buckets = buckets_for(max(mine.n_rows, theirs.n_rows))
    buckets = bucket_rows(digests, bucket_key, n_buckets)
    cap_me, cap_peer = bucket_cap(mine.n_rows, n_buckets), bucket_cap(theirs.n_rows, n_buckets)
    cap_r, cap_s = (cap_me, cap_peer) if receiver == chan.party else (cap_peer, cap_me)
    out_bytes = output_bytes(n_buckets * cap_r, n_buckets * cap_s)  # 2^-40 over all buckets together
    timings: dict[str, float] = {"digests_and_hello": time.perf_counter() - t0}
    role = _as_receiver if receiver == chan.party else _as_sender
    found: list[np.ndarray] = []
    learns = True
    for rows in buckets:
        mine_b = digests if n_buckets == 1 else _padded(take_rows(digests, rows), cap_me, n_buckets)
        res = role(chan, peer, mine_b, cap_peer, reveal, step, timings, out_bytes)
        if res.local_rows is None:
            learns = False
        else:
            found.append(rows[res.local_rows[res.local_rows < rows.size]])  # never a dummy
    if not learns:
        return KkrtResult(None, None, int(theirs.n_rows), timings)
    shared = np.concatenate(found) if found else np.empty(0, dtype=np.int64)
    shared = shared[digest_order(take_rows(digests, shared))]  # both sides: the shared IDs in digest order
    return KkrtResult(shared.astype(np.int64), int(shared.size), int(theirs.n_rows), timings)


def buckets_for(n: int) -> int:
    """Buckets of at most about BUCKET_ITEMS IDs each: memory per party follows the bucket, not the set."""
    return max(1, -(-n // BUCKET_ITEMS))


def session_keys(both: bytes) -> tuple[bytes, bytes]:
    """The digests' key and the buckets' key, from both hellos' nonces (the receiver's first)."""
    return (hashlib.sha256(b"misuan-kkrt-digests" + both).digest()[:16],
            hashlib.sha256(b"misuan-kkrt-buckets" + both).digest()[:16])


def bucket_rows(digests: np.ndarray, key: bytes, n: int) -> list[np.ndarray]:
    """The rows of ``digests`` in each of ``n`` buckets (ascending within a bucket), split by AES under
    ``key``, a key both parties derive from both hellos' nonces."""
    if n == 1:
        return [np.arange(digests.shape[0], dtype=np.int64)]
    which = (prf(key, digests)[:, :8].copy().view("<u8").reshape(-1) % np.uint64(n)).astype(np.int64)
    order = np.argsort(which, kind="stable")
    edges = np.concatenate([[0], np.cumsum(np.bincount(which, minlength=n))])
    return [order[edges[b] : edges[b + 1]] for b in range(n)]


def bucket_cap(n: int, n_buckets: int) -> int:
    """IDs per bucket, dummies included, when ``n`` IDs go to ``n_buckets`` buckets (one bucket: ``n``).

    A bucket's count is binomial with mean ``mu = n / n_buckets``; by a Chernoff bound it exceeds
    ``mu + sqrt(3 mu (STAT_BITS ln 2 + ln n_buckets))`` with probability below 2^-STAT_BITS in all. Every
    bucket is padded to this public size, so the peer learns nothing from the buckets beyond ``n``.
    """
    if n_buckets == 1:
        return n
    mu = n / n_buckets
    return math.ceil(mu + math.sqrt(3 * mu * (STAT_BITS * math.log(2) + math.log(n_buckets)))) + 1


def _padded(bucket: np.ndarray, cap: int, n_buckets: int) -> np.ndarray:
    """A bucket's digests and random dummy digests up to ``cap`` (dummies match nothing: 2^-128 a pair)."""
    if n_buckets == 1:
        return bucket
    if bucket.shape[0] > cap:
        raise CryptoError(f"a bucket holds {bucket.shape[0]} IDs, above its bound {cap} (probability below 2^-40)")
    return np.concatenate([bucket, dummies(cap - bucket.shape[0])])


def _as_receiver(
    chan: Channel, peer: str, digests: np.ndarray, n_peer: int, reveal: str, step: str, timings: dict[str, float],
    out_bytes: int,
) -> KkrtResult:
    me = chan.party
    t = time.perf_counter()
    r = OprfReceiver(digests, n_peer, out_bytes)
    chan.send(peer, f"{step}/setup", r.setup())
    chan.disclose(step, TABLE, me, peer, (HASHES, 16), n_bins=r.n_bins)
    chan.disclose(step, BASE_OT, me, peer, (1,))
    r.accept_sender_setup(chan.recv(peer, f"{step}/setup", expect=SenderSetup))
    chan.disclose(step, BASE_OT, peer, me, (CODE_BITS,))
    timings["setup"] = timings.get("setup", 0.0) + time.perf_counter() - t
    t = time.perf_counter()
    for start, stop in r.chunks():
        chan.send(peer, f"{step}/columns", r.columns(start, stop))
    chan.disclose(step, COLUMNS, me, peer, (CODE_BITS, r.n_bins // 8))
    while not r.complete:
        r.accept_outputs(chan.recv(peer, f"{step}/outputs", expect=Outputs))
    chan.disclose(step, OUTPUTS, peer, me, (n_peer, HASHES))
    own, positions = r.matches()
    chan.disclose(step, INTERSECTION, peer, me, (), size=int(own.size))
    if reveal == "both":
        chan.send(peer, f"{step}/matches", Matches(positions.astype(np.int64)))
        chan.disclose(step, INTERSECTION_BACK, me, peer, (), size=int(own.size))
    timings["extension_and_match"] = timings.get("extension_and_match", 0.0) + time.perf_counter() - t
    return KkrtResult(own.astype(np.int64), int(own.size), n_peer, timings)


def _as_sender(
    chan: Channel, peer: str, digests: np.ndarray, n_peer: int, reveal: str, step: str, timings: dict[str, float],
    out_bytes: int,
) -> KkrtResult:
    me = chan.party
    t = time.perf_counter()
    s = OprfSender(digests, n_peer, out_bytes)
    setup = chan.recv(peer, f"{step}/setup", expect=ReceiverSetup)
    chan.disclose(step, TABLE, peer, me, (HASHES, 16), n_bins=int(setup.n_bins))
    chan.disclose(step, BASE_OT, peer, me, (1,))
    chan.send(peer, f"{step}/setup", s.accept_receiver_setup(setup))
    s.prepare()
    chan.disclose(step, BASE_OT, me, peer, (CODE_BITS,))
    timings["setup"] = timings.get("setup", 0.0) + time.perf_counter() - t
    t = time.perf_counter()
    while not s.complete:
        s.accept_columns(chan.recv(peer, f"{step}/columns", expect=Columns))
    chan.disclose(step, COLUMNS, peer, me, (CODE_BITS, s.n_bins // 8))
    for msg in s.outputs():
        chan.send(peer, f"{step}/outputs", msg)
    chan.disclose(step, OUTPUTS, me, peer, (s.m, HASHES))
    if reveal != "both":
        chan.disclose(step, INTERSECTION, me, peer, (), size_known=False)
        timings["extension"] = timings.get("extension", 0.0) + time.perf_counter() - t
        return KkrtResult(None, None, n_peer, timings)
    chan.disclose(step, INTERSECTION, me, peer, ())
    rows = s.shared(chan.recv(peer, f"{step}/matches", expect=Matches).positions)
    chan.disclose(step, INTERSECTION_BACK, peer, me, (), size=int(rows.size))
    timings["extension"] = timings.get("extension", 0.0) + time.perf_counter() - t
    return KkrtResult(rows.astype(np.int64), int(rows.size), n_peer, timings)


# one bucket's run, the hello's checks and the padding, for the spilled variant (:mod:`.spill`)
bucket_as_receiver, bucket_as_sender, check_hello, padded = _as_receiver, _as_sender, _check_hello, _padded
