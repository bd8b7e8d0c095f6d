"""The one role of ECDH-PSI, run by both parties: :class:`PsiParty` (message logic) and :func:`psi` (its driver)."""

from __future__ import annotations

import collections
import concurrent.futures
import concurrent.futures.process
import dataclasses
import operator
import os
import secrets
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from misuan.crypto.ecdh import GROUP_NAME, BlindingKey
from misuan.errors import ConfigError, MalformedMessageError, MisuanError, ProtocolVersionError
from misuan.net.channel import Channel
from misuan.protocols.kkrt import encode_ids, kkrt_psi
from misuan.protocols.kkrt.digests import ENCODED_BYTES
from misuan.protocols.kkrt.spill import kkrt_psi_spilled
from misuan.protocols.psi.blinding import (
    Executor,
    InlineExecutor,
    blind_task,
    executor_for,
    hash_ids,
    reblind_task,
)
from misuan.protocols.psi.disclosures import (
    BLINDED_IDS,
    DIGESTS_IN_ORDER,
    DIGESTS_SORTED,
    INTERSECTION,
    INTERSECTION_SIZE,
    SET_SIZE,
)
from misuan.protocols.psi.ids import coerce_ids, normalize_ids, normalized_ascii
from misuan.protocols.psi.matching import check_duplicates, match_digests
from misuan.protocols.psi.messages import (
    DIGEST_BYTES,
    DIGEST_DTYPE,
    MAX_BATCH_SIZE,
    MAX_ROWS,
    POINT_DTYPE,
    PROTOCOL,
    STEP,
    BlindedBatch,
    DigestBatch,
    Hello,
)
from misuan.protocols.psi.params import PARALLEL_MIN_ROWS, PsiParams

__all__ = ["PsiParty", "PsiResult", "psi"]

_HASH_CHUNK_BATCHES = 4  # hash tasks of 4 batches: fewer, larger tasks while blinding waits on them anyway


@dataclasses.dataclass
class PsiResult:
    """What this party learns. ``None`` where the reveal mode keeps it from this party.

    ``local_rows`` are int64 indices into the ``ids`` given to :func:`psi`; in mode ``"both"`` the
    two parties' ``local_rows`` list the shared customers in the same order, so
    ``df.iloc[local_rows]`` aligns rows. ``intersection`` holds the IDs of those rows as given
    (before normalisation).
    """

    size: int | None
    intersection: list[str] | None
    local_rows: np.ndarray | None
    peer_size: int = 0
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    x25519: str = ""  # which library computed this party's scalar multiplications: "crypto_mb" or "openssl"


class PsiParty:
    """One party's side of ECDH-PSI: takes the peer's messages, returns the next ones to send. No channel.

    In this order (what :func:`psi` does): :meth:`hello`, :meth:`accept_hello`; :meth:`start`
    (hashes our IDs in a secret random row order, opens the worker pool); while :attr:`sending` or
    :attr:`receiving`, :meth:`next_blinded`, :meth:`accept_blinded` and :meth:`finished_digests`;
    :meth:`finished_digests` with ``drain=True``; :meth:`end_of_stream`; :meth:`sorted_digests`;
    :meth:`accept_digests` while :attr:`awaiting_digests`; :meth:`result`; :meth:`close` in any case.
    The generators yield the messages to send and do their work as they are iterated: exhaust them.

    The peer's batches are checked and re-blinded as they arrive and its digests stored as they are
    computed: nothing is allocated from the peer's announced size, only from what it actually sends.
    """

    def __init__(
        self, party: str, peer: str, ids: Sequence[Any] | np.ndarray, params: PsiParams, *, progress: bool = False
    ) -> None:
        if params.reveal not in ("both", "size", party, peer):
            raise ConfigError(f"PSI reveal must be 'both', 'size', {party!r} or {peer!r}, not {params.reveal!r}")
        self._t0 = time.perf_counter()
        self.party, self.peer, self.params, self.progress = party, peer, params, progress
        self.values = coerce_ids(ids)  # type errors are the user's to fix before any message is sent
        self.n = len(self.values)
        self.key = BlindingKey()
        self._secret = self.key.secret_bytes()
        self.timings: dict[str, float] = {}
        self.sends_digests = params.reveal in ("both", "size", peer)  # the peer learns something
        self.receives_digests = params.reveal in ("both", "size", party)  # this party does
        self.sorts_digests = params.reveal == "size"  # unlinkable to the recipient's rows
        size = params.batch_size
        self.own_batches = [(a, min(a + size, self.n)) for a in range(0, self.n, size)]
        self.n_peer = self.peer_batch_size = self.peer_batch_count = 0  # from the peer's hello
        # the exchange (start() replaces the pool and the bar once the peer's size is known)
        self.pool: Executor = InlineExecutor()
        self.window = 2
        self.bar = tqdm(disable=True)
        self.order: np.ndarray = np.arange(self.n)
        self._points = np.empty(0, dtype=POINT_DTYPE)
        self._blinds: collections.deque[concurrent.futures.Future[bytes]] = collections.deque()
        self._reblinds: collections.deque[tuple[int, int, concurrent.futures.Future[bytes]]] = collections.deque()
        self._submitted = self._sent = self._received = self._digest_batches = 0
        self._peer_parts: list[np.ndarray] = []
        self._peer_digests = np.empty(0, dtype=DIGEST_DTYPE)
        self._own_digests = np.empty(0, dtype=DIGEST_DTYPE)

    # --- step hello ------------------------------------------------------------------------------
    def hello(self) -> Hello:
        p = self.params
        return Hello(PROTOCOL.version, GROUP_NAME, p.normalize.canonical(), p.reveal, self.n, p.batch_size, DIGEST_BYTES)

    def accept_hello(self, theirs: Hello) -> None:
        """Refuse a peer on another version, group, normalisation or mode; note its set and batch sizes."""
        _check_hello(self.hello(), theirs, self.peer)
        self.n_peer, self.peer_batch_size = theirs.n_rows, theirs.batch_size
        self.peer_batch_count = -(-self.n_peer // self.peer_batch_size)

    def start(self) -> None:
        """Hash our IDs to the curve in a secret random row order, refuse repeats, queue their blinding."""
        workers = self.params.workers
        if workers is None:
            workers = (os.cpu_count() or 1) if self.n + self.n_peer >= PARALLEL_MIN_ROWS else 1
        self.pool = executor_for(workers)
        self.window = 2 * max(workers, 1)
        total = 2 * self.n + self.n_peer
        self.bar = tqdm(total=total, unit="id", desc=f"PSI {self.party}", disable=not self.progress, file=sys.stderr)
        # a secret uniformly random row order: where a matched value sits in our stream says nothing
        # about our rows; IDs are hashed in that order so no copy of the points is ever permuted
        self.order = np.argsort(np.frombuffer(secrets.token_bytes(8 * self.n), dtype=np.uint64), kind="stable")
        chunk = self.params.batch_size * _HASH_CHUNK_BATCHES
        self._points = hash_ids(self.pool, self.values, self.order, self.params.normalize, chunk, self.window, self.bar)
        check_duplicates(self._points, self.values, self.order)
        self.timings["hash"] = time.perf_counter() - self._t0
        self._feed()

    # --- step blinded ----------------------------------------------------------------------------
    @property
    def sending(self) -> bool:
        return self._sent < len(self.own_batches)

    @property
    def receiving(self) -> bool:
        return self._received < self.peer_batch_count

    def next_blinded(self) -> BlindedBatch:
        """Our next batch, ``k_self * H(id)`` in our secret row order."""
        a, b = self.own_batches[self._sent]
        blinded = np.frombuffer(self._blinds.popleft().result(), dtype=POINT_DTYPE)
        self._sent += 1
        self.bar.update(b - a)
        self._feed()
        return BlindedBatch(a, blinded)

    def accept_blinded(self, msg: BlindedBatch) -> None:
        """Check the peer's next batch and queue its re-blinding (collected by :meth:`finished_digests`)."""
        if not self.receiving:
            raise MalformedMessageError(f"{self.peer} sent more blinded batches than its hello announced")
        a, b = self._peer_batch(self._received)
        _check_batch(msg.start, msg.points, a, b, POINT_DTYPE, self.peer, "blinded")
        self._reblinds.append((a, b, self.pool.submit(reblind_task, self._secret, msg.points.tobytes(), a, self.peer)))
        self._received += 1

    # --- step doubly_blinded ---------------------------------------------------------------------
    def finished_digests(self, drain: bool = False) -> Iterator[DigestBatch]:
        """Collect re-blinded peer batches: those done or beyond the window, or all with ``drain``.

        Yields the ones to send back at once: where the peer learns which IDs match (in its order).
        """
        while self._reblinds and (drain or self._reblinds[0][2].done() or len(self._reblinds) > self.window):
            a, b, fut = self._reblinds.popleft()
            digests = np.frombuffer(fut.result(), dtype=DIGEST_DTYPE)
            self._peer_parts.append(digests)
            self.bar.update(b - a)
            if self.sends_digests and not self.sorts_digests:
                yield DigestBatch(a, digests)

    def end_of_stream(self) -> None:
        """Every batch sent and re-blinded: free our points (32 bytes per ID) before digests come back."""
        self._points = self._points[:0]
        self._peer_digests = np.concatenate(self._peer_parts) if self._peer_parts else np.empty(0, DIGEST_DTYPE)
        self._peer_parts = []

    def sorted_digests(self) -> Iterator[DigestBatch]:
        """In mode ``size``: the peer's digests sorted, so unlinkable to its rows, in its batch sizes."""
        if not (self.sends_digests and self.sorts_digests):
            return
        ordered = np.sort(self._peer_digests)
        for k in range(self.peer_batch_count):
            a, b = self._peer_batch(k)
            yield DigestBatch(a, ordered[a:b])

    @property
    def awaiting_digests(self) -> bool:
        return self.receives_digests and self._digest_batches < len(self.own_batches)

    def accept_digests(self, msg: DigestBatch) -> None:
        """Store the digests the peer computed for our next batch."""
        if not self.awaiting_digests:
            raise MalformedMessageError(f"{self.peer} sent digests this party does not expect")
        if self._own_digests.size < self.n:
            self._own_digests = np.empty(self.n, dtype=DIGEST_DTYPE)
        a, b = self.own_batches[self._digest_batches]
        _check_batch(msg.start, msg.digests, a, b, DIGEST_DTYPE, self.peer, "doubly_blinded")
        self._own_digests[a:b] = msg.digests
        self._digest_batches += 1

    # --- the result ------------------------------------------------------------------------------
    def result(self) -> PsiResult:
        """What this party learns: its digests matched against those it computed for the peer's values."""
        t_match = time.perf_counter()
        self.timings["exchange"] = t_match - self._t0 - self.timings["hash"]
        if not self.receives_digests:  # the peer alone learns the intersection
            self.timings["total"] = time.perf_counter() - self._t0
            return PsiResult(None, None, None, self.n_peer, self.timings, self.key.backend)
        matched = match_digests(self._own_digests, self._peer_digests, self.peer)
        size = int(matched.size)
        self.timings["match"] = time.perf_counter() - t_match
        self.timings["total"] = time.perf_counter() - self._t0
        if self.sorts_digests:
            return PsiResult(size, None, None, self.n_peer, self.timings, self.key.backend)
        local_rows = self.order[matched].astype(np.int64)
        rows = local_rows.tolist()
        return PsiResult(size, [self.values[i] for i in rows], local_rows, self.n_peer, self.timings, self.key.backend)

    def close(self) -> None:
        self.bar.close()
        self.pool.shutdown(wait=True, cancel_futures=True)

    def _peer_batch(self, k: int) -> tuple[int, int]:
        a = k * self.peer_batch_size
        return a, min(a + self.peer_batch_size, self.n_peer)

    def _feed(self) -> None:
        """Keep up to ``window`` blinding tasks of our own batches queued."""
        while self._submitted < len(self.own_batches) and len(self._blinds) < self.window:
            a, b = self.own_batches[self._submitted]
            self._blinds.append(self.pool.submit(blind_task, self._secret, self._points[a:b].tobytes()))
            self._submitted += 1


def _check_hello(ours: Hello, theirs: Hello, peer: str) -> None:
    if (theirs.version, theirs.group, theirs.digest_bytes) != (ours.version, ours.group, ours.digest_bytes):
        raise ProtocolVersionError(
            f"{peer} runs PSI version {theirs.version} on {theirs.group!r} with {theirs.digest_bytes}-byte "
            f"digests, we run {ours.version} on {ours.group!r} with {ours.digest_bytes}: use the same misuan version"
        )
    if theirs.normalization != ours.normalization:
        raise ConfigError(
            f"ID normalisation differs: ours is {ours.normalization}, {peer}'s is {theirs.normalization}; "
            "agree on one IdNormalization on both sides"
        )
    if theirs.reveal != ours.reveal:
        raise ConfigError(f"PSI reveal differs: ours is {ours.reveal!r}, {peer}'s is {theirs.reveal!r}")
    if not 0 <= theirs.n_rows <= MAX_ROWS:
        raise MalformedMessageError(f"{peer} announced {theirs.n_rows} IDs (allowed: 0 to {MAX_ROWS})")
    if not 1 <= theirs.batch_size <= MAX_BATCH_SIZE:
        raise MalformedMessageError(f"{peer} announced batch size {theirs.batch_size} (allowed: 1 to {MAX_BATCH_SIZE})")


def _check_batch(start: int, arr: Any, a: int, b: int, dtype: np.dtype, peer: str, what: str) -> None:
    if start != a:
        raise MalformedMessageError(f"{peer}'s {what} batch starts at {start}, expected {a}")
    if not isinstance(arr, np.ndarray) or arr.dtype != dtype or arr.shape != (b - a,):
        shape = getattr(arr, "shape", None)
        kind = getattr(arr, "dtype", type(arr).__name__)
        raise MalformedMessageError(
            f"{peer}'s {what} batch at {a} has shape {shape} of {kind}, expected ({b - a},) of {dtype} "
            f"({dtype.itemsize}-byte values)"
        )


# --- the driver ----------------------------------------------------------------------------------
def psi(
    chan: Channel,
    ids: Sequence[Any] | np.ndarray,
    peer: str,
    params: PsiParams | None = None,
    *,
    progress: bool | None = None,
    step: str = STEP,
) -> PsiResult:
    """Run ECDH-PSI with ``peer`` as ``chan.party`` on ``ids``; see :mod:`misuan.protocols.psi`.

    ``params`` (default :class:`PsiParams`): ``reveal`` (``"both"``, ``"size"`` or the name of the
    one party that learns the intersection), ``normalize`` (must equal the peer's), ``batch_size``,
    ``workers`` (processes for the hashing and blinding). ``progress``: a tqdm bar on stderr
    (default: when stderr is a terminal).
    """
    if peer not in chan.peers:
        raise ConfigError(f"PSI peer {peer!r} is not a peer of {chan.party!r} in this job ({list(chan.peers)})")
    params = params if params is not None else PsiParams()
    if params.resolved_protocol == "kkrt":
        return _kkrt(chan, ids, peer, params, step)
    party = PsiParty(chan.party, peer, ids, params, progress=sys.stderr.isatty() if progress is None else progress)
    chan.send(peer, f"{step}/hello", party.hello())
    chan.disclose(step, SET_SIZE, chan.party, peer, (), n=party.n)
    party.accept_hello(chan.recv(peer, f"{step}/hello", expect=Hello))
    chan.disclose(step, SET_SIZE, peer, chan.party, (), n=party.n_peer)
    try:
        party.start()
        _exchange(chan, party, step)
        result = party.result()
    except concurrent.futures.process.BrokenProcessPool as exc:
        raise MisuanError(
            "PSI's worker processes died or could not start. From a script, call psi under "
            "`if __name__ == '__main__':` (worker processes re-import the main module), check memory, "
            "or pass workers=1"
        ) from exc
    finally:
        party.close()
    _disclose_result(chan, party, result, step)
    return result


def _kkrt(chan: Channel, ids: Sequence[Any] | np.ndarray, peer: str, params: PsiParams, step: str) -> PsiResult:
    if params.reveal == "size":
        raise ConfigError('PSI protocol "kkrt" cannot reveal only the size: use protocol = "ecdh" (or "auto") for that')
    values = coerce_ids(ids)
    # in a list, so that kkrt_psi holds the only reference and frees the encodings once digested
    res = kkrt_psi(chan, [_encoded(values, params)], peer, reveal=params.reveal, normalization=params.normalize.canonical(), step=step)
    inter = None if res.local_rows is None else _pick(values, res.local_rows)
    return PsiResult(res.size, inter, res.local_rows, res.peer_size, res.timings, x25519="none (kkrt)")


def psi_chunked(
    chan: Channel, id_chunks: Callable[[], Iterable[Sequence[Any]]], n_rows: int, peer: str, workdir: Path,
    params: PsiParams | None = None, *, step: str = STEP,
) -> PsiResult:
    """PSI on IDs too many for memory: KKRT over buckets spilled to ``workdir`` (:mod:`misuan.protocols.kkrt.spill`).

    ``id_chunks()`` yields the ``n_rows`` raw IDs in order, a chunk at a time (called again only if
    a fresh run needs them; a resumed run reads its buckets from ``workdir``). The result has no
    ``intersection`` (the IDs are the caller's to look up by ``local_rows``); in mode ``"both"`` the
    two parties list the shared customers in the same order, bucket by bucket.
    """
    if peer not in chan.peers:
        raise ConfigError(f"PSI peer {peer!r} is not a peer of {chan.party!r} in this job ({list(chan.peers)})")
    params = params if params is not None else PsiParams()
    if params.resolved_protocol != "kkrt":
        raise ConfigError('PSI beyond memory runs KKRT-PSI: set protocol = "kkrt" (or "auto" with reveal other than "size")')

    def normalised() -> Iterator[list[bytes]]:
        start = 0
        for chunk in id_chunks():
            values = coerce_ids(chunk)
            yield normalize_ids(values, params.normalize, range(start, start + len(values)))
            start += len(values)

    res = kkrt_psi_spilled(chan, normalised, n_rows, peer, workdir, reveal=params.reveal,
                           normalization=params.normalize.canonical(), step=step)
    return PsiResult(res.size, None, res.local_rows, res.peer_size, res.timings, x25519="none (kkrt)")


def _pick(values: list[str], rows: np.ndarray) -> list[str]:
    """``[values[i] for i in rows]``, gathered in C by itemgetter (the IDs sit all over the heap, so
    this is memory-bound: 0.18 s per 500k against 0.26 s in Python) a chunk of rows at a time (a
    chunk's row numbers as Python ints, not all of them)."""
    out: list[str] = []
    for a in range(0, rows.size, 1 << 16):
        chunk = rows[a : a + (1 << 16)].tolist()
        out.extend(operator.itemgetter(*chunk)(values) if len(chunk) > 1 else [values[i] for i in chunk])
    return out


def _encoded(values: list[str], params: PsiParams) -> np.ndarray:
    """:func:`encode_ids` of the normalised IDs, a chunk at a time: memory for the encodings, not
    for a normalised copy of every ID."""
    out = np.empty((len(values), ENCODED_BYTES), dtype=np.uint8)
    chunk = 1 << 18
    for a in range(0, len(values), chunk):
        part = values[a : a + chunk]
        out[a : a + len(part)] = encode_ids(_normalized(part, params, a))
    return out


def _normalized(values: list[str], params: PsiParams, first_row: int) -> list[str] | list[bytes]:
    """ASCII IDs stay ``str`` (:func:`encode_ids` writes their bytes without a bytes object each); others
    become their UTF-8 bytes. ``first_row``: the row of ``values[0]`` in the user's data, for errors."""
    fast = normalized_ascii(values, params.normalize)
    if fast is not None:
        return fast
    return normalize_ids(values, params.normalize, range(first_row, first_row + len(values)))


def _exchange(chan: Channel, party: PsiParty, step: str) -> None:
    """Steps ``blinded`` and ``doubly_blinded`` for one party; all channel I/O in the calling thread.

    Deadlock freedom: in the streaming loop a party blocks only on its own pool or on the peer's next
    ``blinded`` batch, which the peer sends before it waits for ours; it waits for its digests
    only after it has sent all its batches, and the peer sends digests without waiting for anything
    but ``blinded`` batches.
    """
    peer = party.peer
    while party.sending or party.receiving:
        if party.sending:
            chan.send(peer, f"{step}/blinded", party.next_blinded())
        if party.receiving:
            party.accept_blinded(chan.recv(peer, f"{step}/blinded", expect=BlindedBatch))
        for digests in party.finished_digests():
            chan.send(peer, f"{step}/doubly_blinded", digests)
    for digests in party.finished_digests(drain=True):
        chan.send(peer, f"{step}/doubly_blinded", digests)
    party.end_of_stream()
    chan.disclose(step, BLINDED_IDS, chan.party, peer, (party.n,))
    chan.disclose(step, BLINDED_IDS, peer, chan.party, (party.n_peer,))
    kind = DIGESTS_SORTED if party.sorts_digests else DIGESTS_IN_ORDER
    if party.sends_digests:
        for digests in party.sorted_digests():
            chan.send(peer, f"{step}/doubly_blinded", digests)
        chan.disclose(step, kind, chan.party, peer, (party.n_peer,))
    if party.receives_digests:
        while party.awaiting_digests:
            party.accept_digests(chan.recv(peer, f"{step}/doubly_blinded", expect=DigestBatch))
        chan.disclose(step, kind, peer, chan.party, (party.n,))


def _disclose_result(chan: Channel, party: PsiParty, result: PsiResult, step: str) -> None:
    me, peer = chan.party, party.peer
    if result.size is None:  # the peer alone learns the intersection
        chan.disclose(step, INTERSECTION, me, peer, (), size_known=False)
    elif result.local_rows is None:  # mode "size"
        chan.disclose(step, INTERSECTION_SIZE, peer, me, (), size=result.size)
        chan.disclose(step, INTERSECTION_SIZE, me, peer, (), size=result.size)
    else:
        # shape (): the discloser of a one-sided intersection cannot know its size, so both copies
        # of the entry record the same shape and the size goes in the detail
        chan.disclose(step, INTERSECTION, peer, me, (), size=result.size)
        if party.params.reveal == "both":
            chan.disclose(step, INTERSECTION, me, peer, (), size=result.size)
