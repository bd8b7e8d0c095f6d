"""Private set intersection of customer IDs: ECDH-PSI (DDH, semi-honest), streamed, on all cores.

Two parties, each with a list of distinct customer IDs, learn which IDs they share (or only how many)
and nothing else beyond the other's set size.

Protocol (each party ``P`` with IDs ``x_1..x_n``, secret blinding key ``k_P``; group, hash and
blinding in :mod:`misuan.crypto.ecdh`: the prime-order subgroup of Curve25519 through X25519):

0. ``hello``: both send protocol version, group, the canonical text of their
   :class:`~misuan.protocols.psi_ids.IdNormalization`, the reveal mode and their set size; each
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

    res = psi(chan, df["customer_id"], "partner", reveal="both",
              normalize=IdNormalization(case="casefold"))
    shared = df.iloc[res.local_rows]   # same customers, same order as on the partner's side

Reveal modes: ``"both"`` (each learns the intersection), ``"<party>"`` (only that party learns it;
the other learns nothing but the receiver's set size), ``"size"`` (each learns only its size).
Security model: semi-honest parties, DDH in the group, ``H`` a random oracle. Leakage (docs/privacy.md,
and recorded in the ledger through ``chan.disclose`` on both sides): each party's set size to the
other; the intersection (as above) or its size. Blinded values are pseudorandom under DDH; the
random row order ``pi_P`` keeps the *positions* of matched values from telling the peer anything
about the sender's row order. A malicious party could lie about its set or results; not covered.

Peer messages are checked before use: sizes and offsets against the peer's ``hello``, point
encoding (32-byte canonical u-coordinates, not of small order; on the curve, tested on a random
sample of ``CURVE_CHECK_SAMPLE`` values per batch, as twist points cannot hurt the key), repeated
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

As a job step (``kind = "psi"``): params ``id_column``, ``peer``, ``reveal``, ``normalize`` (the
fields of :class:`IdNormalization`, identical in both parties' specs), optional ``batch_size`` and
``workers``; call ``psi(ctx.channel, df[id_column], peer, ...)`` with ``progress=False`` unless
interactive; outputs ``size``/``peer_size`` (JSON) and ``local_rows`` (an ``.npy`` artefact,
written atomically) that later steps use as ``df.iloc[local_rows]``. A step that did not finish
is rerun on both parties, never resumed half-way.
"""

from __future__ import annotations

import collections
import concurrent.futures
import concurrent.futures.process
import dataclasses
import multiprocessing
import os
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from tqdm import tqdm

from misuan.crypto.ecdh import (
    GROUP_NAME,
    POINT_BYTES,
    BlindingKey,
    SmallOrderPointError,
    find_invalid_point,
    find_noncanonical,
    hash_to_curve,
)
from misuan.errors import ConfigError, DuplicateIdError, MalformedMessageError, MisuanError, ProtocolError
from misuan.net import wire
from misuan.net.channel import Channel
from misuan.protocols.psi_ids import IdNormalization, coerce_ids, example_rows, normalize_ids

__all__ = ["IdNormalization", "PsiResult", "psi"]

STEP = "psi"
PROTOCOL_VERSION = 1
DIGEST_BYTES = 16  # 128-bit digests: a false match among 2^32 x 2^32 IDs has probability 2^-64
DEFAULT_BATCH_SIZE = 8192
MAX_BATCH_SIZE = 1 << 20
MAX_ROWS = 1 << 34
PARALLEL_MIN_ROWS = 20_000  # below this, starting worker processes costs more than it saves
# values per received batch given the on-curve test (all get the canonical-encoding test): a peer
# sending garbage fails it with probability 1 - 2^-16 per batch; twist points cannot hurt the key
# (ecdh.find_noncanonical says why) and would only never match
CURVE_CHECK_SAMPLE = 16
_HASH_CHUNK_BATCHES = 4  # hash tasks of 4 batches: fewer, larger tasks while blinding waits on them anyway

_POINT_DTYPE = np.dtype(f"S{POINT_BYTES}")
_DIGEST_DTYPE = np.dtype(f"S{DIGEST_BYTES}")


# --- messages ------------------------------------------------------------------------------------
@wire.message("psi.PsiHello")
@dataclasses.dataclass
class PsiHello:
    version: int
    group: str
    normalization: str  # IdNormalization.canonical()
    reveal: str  # "both", "size" or the receiving party's name
    n_rows: int
    batch_size: int
    digest_bytes: int


@wire.message("psi.BlindedBatch")
@dataclasses.dataclass
class BlindedBatch:
    start: int  # offset of this batch in the sender's (secretly permuted) order
    points: np.ndarray  # S32: k_sender * H(id), u-coordinates


@wire.message("psi.DigestBatch")
@dataclasses.dataclass
class DigestBatch:
    start: int  # offset in the recipient's order of step ``blinded`` (0, batch, ... when sorted)
    digests: np.ndarray  # S16: first bytes of k_sender * k_recipient * H(id)


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


# --- worker tasks (module level: they run in pool processes) -------------------------------------
def _hash_task(ids: list[str], normalization: IdNormalization, rows: list[int]) -> bytes:
    return hash_to_curve(normalize_ids(ids, normalization, rows))


def _blind_task(secret: bytes, points: bytes) -> bytes:
    return BlindingKey(secret).blind(points)


def _reblind_task(secret: bytes, points: bytes, first: int, sender: str) -> bytes:
    n = len(points) // POINT_BYTES
    sample = None if n <= CURVE_CHECK_SAMPLE else np.random.default_rng().choice(n, CURVE_CHECK_SAMPLE, replace=False)
    bad = find_noncanonical(points)
    if bad < 0:
        bad = find_invalid_point(points, sample)
    if bad >= 0:
        raise MalformedMessageError(
            f"{sender} sent value #{first + bad} that is not a canonical curve point: refusing it"
        )
    try:
        return BlindingKey(secret).blind(points, truncate=DIGEST_BYTES)
    except SmallOrderPointError as exc:
        raise MalformedMessageError(f"{sender} sent value #{first + exc.index}, a point of small order") from None


class _InlineExecutor:
    """Runs tasks at submission, in this thread: small jobs and ``workers=1``."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future[Any]:
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        try:
            fut.set_result(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - delivered through the future like a pool would
            fut.set_exception(exc)
        return fut

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


Executor = concurrent.futures.Executor | _InlineExecutor


def _executor(workers: int) -> Executor:
    if workers <= 1:
        return _InlineExecutor()
    if multiprocessing.current_process().daemon:
        # a daemonic process may not start children (multiprocessing forbids it): threads give
        # correct results; crypto_mb's X25519 releases the GIL (a ctypes call), hashing and
        # OpenSSL's X25519 hold it
        return concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="psi-worker")
    return concurrent.futures.ProcessPoolExecutor(workers, mp_context=_process_context())


def _process_context() -> multiprocessing.context.BaseContext:
    """``forkserver``: workers fork from a clean process that imported this module once.

    Never a plain ``fork`` of the caller, which may run threads holding locks (the channel's, gRPC's).
    Like ``spawn``, it re-imports the caller's main module, which therefore needs the usual
    ``if __name__ == "__main__":`` guard; :func:`psi` says so if the workers cannot start.
    """
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    return ctx


# --- the protocol --------------------------------------------------------------------------------
def psi(
    chan: Channel,
    ids: Sequence[Any] | np.ndarray,
    peer: str,
    *,
    reveal: str = "both",
    normalize: IdNormalization | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    workers: int | None = None,
    progress: bool | None = None,
    step: str = STEP,
) -> PsiResult:
    """Run ECDH-PSI with ``peer`` as ``chan.party`` on ``ids``; see the module docstring.

    ``reveal``: ``"both"``, ``"size"`` or the name of the one party that learns the intersection.
    ``normalize``: must equal the peer's (default: ``IdNormalization()``). ``workers``: processes for
    the hashing and blinding (default: all cores when the two sets hold at least
    ``PARALLEL_MIN_ROWS`` IDs, else in this thread). ``progress``: a tqdm bar on stderr (default:
    when stderr is a terminal).
    """
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    normalization = normalize if normalize is not None else IdNormalization()
    if peer not in chan.peers:
        raise ConfigError(f"PSI peer {peer!r} is not a peer of {chan.party!r} in this job ({list(chan.peers)})")
    if reveal not in ("both", "size", chan.party, peer):
        raise ConfigError(f"PSI reveal must be 'both', 'size', {chan.party!r} or {peer!r}, not {reveal!r}")
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ConfigError(f"PSI batch_size must be between 1 and {MAX_BATCH_SIZE}, not {batch_size}")
    values = coerce_ids(ids)  # type errors are the user's to fix before any message is sent
    n = len(values)

    hello = PsiHello(PROTOCOL_VERSION, GROUP_NAME, normalization.canonical(), reveal, n, batch_size, DIGEST_BYTES)
    chan.send(peer, f"{step}/hello", hello)
    chan.disclose(step, chan.party, peer, "ID set size", (), n=n)
    theirs = chan.recv(peer, f"{step}/hello", expect=PsiHello)
    _check_hello(hello, theirs, peer)
    n_peer = theirs.n_rows
    chan.disclose(step, peer, chan.party, "ID set size", (), n=n_peer)

    if workers is None:
        workers = (os.cpu_count() or 1) if n + n_peer >= PARALLEL_MIN_ROWS else 1
    show = sys.stderr.isatty() if progress is None else progress
    key = BlindingKey()
    pool = _executor(workers)
    bar = tqdm(total=2 * n + n_peer, unit="id", desc=f"PSI {chan.party}", disable=not show, file=sys.stderr)
    try:
        window = 2 * max(workers, 1)
        # a secret uniformly random row order: where a matched value sits in our stream says nothing
        # about our rows; IDs are hashed in that order so no copy of the points is ever permuted
        order = np.argsort(np.frombuffer(secrets.token_bytes(8 * n), dtype=np.uint64), kind="stable")
        points = _hash_ids(pool, values, order, normalization, batch_size * _HASH_CHUNK_BATCHES, window, bar)
        _check_duplicates(points, values, order)
        timings["hash"] = time.perf_counter() - t0
        exchange = _Exchange(
            chan, peer, step, reveal, key, pool, window, bar, points, batch_size, n_peer, theirs.batch_size
        )
        del points  # the exchange holds it until every batch is sent, then drops it
        own_digests, peer_digests = exchange.run()
        del exchange
        timings["exchange"] = time.perf_counter() - t0 - timings["hash"]
    except concurrent.futures.process.BrokenProcessPool as exc:
        raise MisuanError(
            "PSI's worker processes died or could not start. From a script, call psi under "
            "`if __name__ == '__main__':` (worker processes re-import the main module), check memory, "
            "or pass workers=1"
        ) from exc
    finally:
        bar.close()
        pool.shutdown(wait=True, cancel_futures=True)

    learns_rows = reveal in ("both", chan.party)
    if own_digests is None:  # the peer alone learns the intersection
        chan.disclose(step, chan.party, peer, "intersection (which of its IDs are in both sets)", (), size_known=False)
        timings["total"] = time.perf_counter() - t0
        return PsiResult(None, None, None, n_peer, timings, key.backend)
    t_match = time.perf_counter()
    matched = _match(own_digests, peer_digests, peer)
    size = int(matched.size)
    timings["match"] = time.perf_counter() - t_match
    timings["total"] = time.perf_counter() - t0
    if not learns_rows:
        chan.disclose(step, peer, chan.party, "intersection size", (), size=size)
        chan.disclose(step, chan.party, peer, "intersection size", (), size=size)
        return PsiResult(size, None, None, n_peer, timings, key.backend)
    local_rows = order[matched].astype(np.int64)
    what = "intersection (which of its IDs are in both sets)"
    chan.disclose(step, peer, chan.party, what, (size,), size=size)
    if reveal == "both":
        chan.disclose(step, chan.party, peer, what, (size,), size=size)
    return PsiResult(size, [values[i] for i in local_rows.tolist()], local_rows, n_peer, timings, key.backend)


def _check_hello(ours: PsiHello, theirs: PsiHello, peer: str) -> None:
    if (theirs.version, theirs.group, theirs.digest_bytes) != (ours.version, ours.group, ours.digest_bytes):
        raise ProtocolError(
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


def _ordered(
    pool: Executor, tasks: collections.abc.Iterable[tuple[Any, ...]], fn: Callable[..., Any], window: int
) -> collections.abc.Iterator[Any]:
    """``fn(*task)`` for each task, in order, with at most ``window`` tasks in flight."""
    pending: collections.deque[concurrent.futures.Future[Any]] = collections.deque()
    it = iter(tasks)
    for task in it:
        pending.append(pool.submit(fn, *task))
        if len(pending) >= window:
            break
    while pending:
        result = pending.popleft().result()
        for task in it:
            pending.append(pool.submit(fn, *task))
            break
        yield result


def _hash_ids(
    pool: Executor,
    values: list[str],
    order: np.ndarray,
    normalization: IdNormalization,
    chunk: int,
    window: int,
    bar: tqdm,
) -> np.ndarray:
    """``H(values[order[i]])`` for every ``i``, as an ``S32`` array (the tasks are built lazily)."""
    n = len(values)
    buf = bytearray(POINT_BYTES * n)
    starts = range(0, n, chunk)

    def task(a: int) -> tuple[list[str], IdNormalization, list[int]]:
        rows = order[a : a + chunk].tolist()
        return [values[r] for r in rows], normalization, rows

    for a, data in zip(starts, _ordered(pool, map(task, starts), _hash_task, window), strict=True):
        buf[a * POINT_BYTES : a * POINT_BYTES + len(data)] = data
        bar.update(len(data) // POINT_BYTES)
    return np.frombuffer(buf, dtype=_POINT_DTYPE)


def _check_duplicates(points: np.ndarray, values: list[str], order: np.ndarray) -> None:
    """Raise :class:`DuplicateIdError` if two rows hash to the same point (equal normalised IDs).

    ``points[i]`` is the hash of row ``order[i]``.
    """
    if points.size < 2:
        return
    prefix = points.view("<u8").reshape(-1, POINT_BYTES // 8)[:, 0]  # H(id) is uniform: 64 bits sort well
    sorted_prefix = np.sort(prefix)
    repeated = np.unique(sorted_prefix[1:][sorted_prefix[1:] == sorted_prefix[:-1]])
    if repeated.size == 0:
        return
    rows_by_point: dict[bytes, list[int]] = {}
    for i in np.flatnonzero(np.isin(prefix, repeated)).tolist():
        rows_by_point.setdefault(points[i : i + 1].tobytes(), []).append(int(order[i]))
    groups = sorted(sorted(rows) for rows in rows_by_point.values() if len(rows) > 1)
    if groups:
        shown = "; ".join(f"{example_rows(rows, values)}" for rows in groups[:5])
        extra = f" (and {len(groups) - 5} more groups)" if len(groups) > 5 else ""
        raise DuplicateIdError(
            f"{sum(len(g) for g in groups)} rows repeat {len(groups)} IDs after normalisation: {shown}{extra}; "
            "deduplicate the ID column before PSI"
        )


class _Exchange:
    """Steps ``blinded`` and ``doubly_blinded`` for one party; all channel I/O in the calling thread.

    Deadlock freedom: in the streaming loop a party blocks only on its own pool or on the peer's next
    ``blinded`` batch, which the peer sends before it waits for ours; it waits for its digests
    only after it has sent all its batches, and the peer sends digests without waiting for anything
    but ``blinded`` batches.
    """

    def __init__(
        self,
        chan: Channel,
        peer: str,
        step: str,
        reveal: str,
        key: BlindingKey,
        pool: Executor,
        window: int,
        bar: tqdm,
        points: np.ndarray,
        batch_size: int,
        n_peer: int,
        peer_batch_size: int,
    ) -> None:
        self.chan, self.peer, self.step, self.pool, self.window, self.bar = chan, peer, step, pool, window, bar
        self.secret = key.secret_bytes()
        self.points = points
        n = points.shape[0]
        self.own_batches = [(a, min(a + batch_size, n)) for a in range(0, n, batch_size)]
        # the peer's batches are computed on demand and its digests stored as they arrive: nothing
        # is allocated from the peer's announced size, only from what it actually sends
        self.peer_batch_size = peer_batch_size
        self.peer_batch_count = -(-n_peer // peer_batch_size)
        self.n, self.n_peer = n, n_peer
        self.send_digests = reveal in ("both", "size", peer)  # the peer learns something
        self.recv_digests = reveal in ("both", "size", chan.party)  # this party does
        self.sorted_digests = reveal == "size"
        self.peer_parts: list[np.ndarray] = []
        self.blinds: collections.deque[concurrent.futures.Future[bytes]] = collections.deque()
        self.reblinds: collections.deque[tuple[int, int, concurrent.futures.Future[bytes]]] = collections.deque()
        self.submitted = 0

    def run(self) -> tuple[np.ndarray | None, np.ndarray]:
        """Returns (digests of our own values in our permuted order, or None; digests of the peer's)."""
        chan, peer, step = self.chan, self.peer, self.step
        sent = received = 0
        self._feed()
        while sent < len(self.own_batches) or received < self.peer_batch_count:
            if sent < len(self.own_batches):
                a, b = self.own_batches[sent]
                blinded = np.frombuffer(self.blinds.popleft().result(), dtype=_POINT_DTYPE)
                chan.send(peer, f"{step}/blinded", BlindedBatch(a, blinded))
                self.bar.update(b - a)
                sent += 1
                self._feed()
            if received < self.peer_batch_count:
                a, b = self._peer_batch(received)
                msg = chan.recv(peer, f"{step}/blinded", expect=BlindedBatch)
                _check_batch(msg.start, msg.points, a, b, _POINT_DTYPE, peer, "blinded")
                fut = self.pool.submit(_reblind_task, self.secret, msg.points.tobytes(), a, peer)
                self.reblinds.append((a, b, fut))
                received += 1
            while self.reblinds and (self.reblinds[0][2].done() or len(self.reblinds) > self.window):
                self._finish_reblind()
        while self.reblinds:
            self._finish_reblind()
        self.points = self.points[:0]  # all sent: free 32 bytes per ID before the digests come back
        peer_digests = np.concatenate(self.peer_parts) if self.peer_parts else np.empty(0, _DIGEST_DTYPE)
        self.peer_parts = []
        chan.disclose(step, chan.party, peer, "blinded IDs (under its key)", (self.n,), form="blinded")
        chan.disclose(step, peer, chan.party, "blinded IDs (under its key)", (self.n_peer,), form="blinded")
        if self.send_digests:
            if self.sorted_digests:
                ordered = np.sort(peer_digests)
                for k in range(self.peer_batch_count):
                    a, b = self._peer_batch(k)
                    chan.send(peer, f"{step}/doubly_blinded", DigestBatch(a, ordered[a:b]))
            chan.disclose(step, chan.party, peer, self._digest_what(), (self.n_peer,), form="blinded")
        if not self.recv_digests:
            return None, peer_digests
        own = np.empty(self.n, dtype=_DIGEST_DTYPE)
        for a, b in self.own_batches:
            msg = chan.recv(peer, f"{step}/doubly_blinded", expect=DigestBatch)
            _check_batch(msg.start, msg.digests, a, b, _DIGEST_DTYPE, peer, "doubly_blinded")
            own[a:b] = msg.digests
        chan.disclose(step, peer, chan.party, self._digest_what(), (self.n,), form="blinded")
        return own, peer_digests

    def _digest_what(self) -> str:
        order = "sorted, unlinkable to rows" if self.sorted_digests else "in the recipient's order"
        return f"doubly-blinded ID digests ({DIGEST_BYTES} bytes, {order})"

    def _peer_batch(self, k: int) -> tuple[int, int]:
        a = k * self.peer_batch_size
        return a, min(a + self.peer_batch_size, self.n_peer)

    def _feed(self) -> None:
        """Keep up to ``window`` blinding tasks of our own batches queued."""
        while self.submitted < len(self.own_batches) and len(self.blinds) < self.window:
            a, b = self.own_batches[self.submitted]
            self.blinds.append(self.pool.submit(_blind_task, self.secret, self.points[a:b].tobytes()))
            self.submitted += 1

    def _finish_reblind(self) -> None:
        a, b, fut = self.reblinds.popleft()
        digests = np.frombuffer(fut.result(), dtype=_DIGEST_DTYPE)
        self.peer_parts.append(digests)
        self.bar.update(b - a)
        if self.send_digests and not self.sorted_digests:
            self.chan.send(self.peer, f"{self.step}/doubly_blinded", DigestBatch(a, digests))


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


def _match(own: np.ndarray, theirs: np.ndarray, peer: str) -> np.ndarray:
    """Positions in ``own`` of digests that also occur in ``theirs``, sorted by digest value.

    Fast path on 64-bit prefixes (digests are uniform); if any prefix repeats on either side, the
    exact path sorts the full digests and refuses repeated values from one side.
    """
    if own.size == 0 or theirs.size == 0:
        return np.empty(0, dtype=np.int64)
    own_key = np.ascontiguousarray(own.view("<u8").reshape(-1, DIGEST_BYTES // 8)[:, 0])
    their_order = np.argsort(theirs.view("<u8").reshape(-1, DIGEST_BYTES // 8)[:, 0])
    their_key = theirs.view("<u8").reshape(-1, DIGEST_BYTES // 8)[their_order, 0]
    if (their_key[1:] == their_key[:-1]).any() or _has_repeats(own_key):
        return _match_exact(own, theirs, peer)
    # where each own prefix would sit among the peer's; a hit needs the full digest to agree too
    pos = np.minimum(np.searchsorted(their_key, own_key), their_key.size - 1)
    candidates = np.flatnonzero(their_key[pos] == own_key)
    candidates = candidates[own[candidates] == theirs[their_order[pos[candidates]]]]
    return candidates[np.argsort(own[candidates], kind="stable")].astype(np.int64)


def _has_repeats(keys: np.ndarray) -> bool:
    ranked = np.sort(keys)
    return bool((ranked[1:] == ranked[:-1]).any())


def _match_exact(own: np.ndarray, theirs: np.ndarray, peer: str) -> np.ndarray:
    both = np.concatenate([own, theirs])
    order = np.argsort(both, kind="stable")
    ranked = both[order]
    equal = np.flatnonzero(ranked[1:] == ranked[:-1])
    first, second = order[equal], order[equal + 1]
    n = own.size
    if ((first < n) == (second < n)).any() or (equal[1:] == equal[:-1] + 1).any():
        raise MalformedMessageError(f"{peer}'s doubly-blinded values repeat: its set or its replies are not valid")
    return np.where(first < n, first, second).astype(np.int64)
