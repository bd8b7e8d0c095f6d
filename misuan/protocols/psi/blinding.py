"""The curve work of PSI, off the main thread: hashing IDs to the curve, blinding, re-blinding.

Tasks are module-level functions (they run in pool processes). :func:`executor_for` picks where they
run: in the calling thread (``workers=1``), in a process pool (forkserver), or in threads inside a
daemonic process; :func:`ordered` feeds a pool in order with a bounded window.
"""

from __future__ import annotations

import collections
import concurrent.futures
import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
from tqdm import tqdm

from misuan.crypto.ecdh import (
    POINT_BYTES,
    BlindingKey,
    SmallOrderPointError,
    find_invalid_point,
    find_noncanonical,
    hash_to_curve,
)
from misuan.crypto.pool import process_executor
from misuan.errors import MalformedMessageError
from misuan.protocols.psi.ids import IdNormalization, normalize_ids
from misuan.protocols.psi.messages import DIGEST_BYTES, POINT_DTYPE

# values per received batch given the on-curve test (all get the canonical-encoding test): a peer
# sending garbage fails it with probability 1 - 2^-16 per batch; twist points cannot hurt the key
# (ecdh.find_noncanonical says why) and would only never match
CURVE_CHECK_SAMPLE = 16


# --- worker tasks (module level: they run in pool processes) -------------------------------------
def hash_task(ids: list[str], normalization: IdNormalization, rows: list[int]) -> bytes:
    return hash_to_curve(normalize_ids(ids, normalization, rows))


def blind_task(secret: bytes, points: bytes) -> bytes:
    return BlindingKey(secret).blind(points)


def reblind_task(secret: bytes, points: bytes, first: int, sender: str) -> bytes:
    """Digests of ``secret * points`` after checking that every point is a canonical curve point."""
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


# --- where the tasks run -------------------------------------------------------------------------
class InlineExecutor:
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


Executor = concurrent.futures.Executor | InlineExecutor


def executor_for(workers: int) -> Executor:
    if workers <= 1:
        return InlineExecutor()
    if multiprocessing.current_process().daemon:
        # a daemonic process may not start children (multiprocessing forbids it): threads give
        # correct results; crypto_mb's X25519 releases the GIL (a ctypes call), hashing and
        # OpenSSL's X25519 hold it
        return concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="psi-worker")
    return process_executor(workers, _process_context())  # local processes, or the party's Ray cluster


def _process_context() -> multiprocessing.context.BaseContext:
    """``forkserver``: workers fork from a clean process that imported this module once.

    Never a plain ``fork`` of the caller, which may run threads holding locks (the channel's, gRPC's).
    Like ``spawn``, it re-imports the caller's main module, which therefore needs the usual
    ``if __name__ == "__main__":`` guard; :func:`~misuan.protocols.psi.psi` says so if the workers
    cannot start.
    """
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    return ctx


def ordered(pool: Executor, tasks: Iterable[tuple[Any, ...]], fn: Callable[..., Any], window: int) -> Iterator[Any]:
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


def hash_ids(
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

    for a, data in zip(starts, ordered(pool, map(task, starts), hash_task, window), strict=True):
        buf[a * POINT_BYTES : a * POINT_BYTES + len(data)] = data
        bar.update(len(data) // POINT_BYTES)
    return np.frombuffer(buf, dtype=POINT_DTYPE)
