"""Batched homomorphic work of the WOE protocol: label encryption and per-bin sums, streamed and over cores.

Two costs dominate a WOE job: the label party encrypts one label per row, and the feature party
multiplies every row's ciphertext into one bin per feature. Both stream in chunks of rows, so the
feature party sums chunk ``k`` while the label party still encrypts chunk ``k + 1``; both use worker
processes (the GIL serialises gmpy2 calls within one process). Workers come from a forkserver (or
are spawned), never forked from the protocol's threads; as with any such code, a script that runs a
job must guard its entry point with ``if __name__ == "__main__":``.

Bin sums share work across features: rows are first summed into the *joint cells* of a group of
features (their bin-index tuples), and each feature's bins are then summed from those cells. With
``n`` rows and features of ``B`` bins, a group of ``k`` features costs ``n + k * min(B**k, n)``
multiplications instead of ``k * n``; for ``B = 10`` and ``k = 3`` that is about a third. The result
is the same homomorphic sum (multiplication is associative and commutative); only the order of the
multiplications changes. No secret is involved in choosing the groups.

Ciphertexts reach the workers through shared memory as the fixed-width bytes of the wire format;
nothing a peer sent is pickled (only our own public key, bin indices and the sums workers return).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, Future
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import shared_memory
from typing import Any

import numpy as np
from gmpy2 import mpz

from misuan.crypto.he import PublicKey, public_key_from_wire
from misuan.crypto.pool import on_ray, process_executor
from misuan.errors import ConfigError, CryptoError

# below this many ciphertext multiplications starting worker processes costs more than it saves
POOL_MIN_MULTIPLICATIONS = 600_000
POOL_MIN_ENCRYPTIONS = 20_000
WIDE_TABLE_MIN = 10_000  # encryptions per worker from which a wider fixed-base table pays off
MAX_GROUP = 6  # features per joint-cell group


def _context() -> multiprocessing.context.BaseContext:
    """Forkserver where available: workers fork from a clean server process (never from the protocol's
    threads) that already imported this module and the main module, so a worker starts in milliseconds
    instead of re-importing the main script (e.g. the CLI with all its imports) as a spawned one does.
    The preload list applies to the process's one forkserver if this is the first user to start it."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["__main__", __name__])
        return ctx
    return multiprocessing.get_context("spawn")


def available_workers(requested: int | None) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(requested or cores, cores))


# --- encryption ----------------------------------------------------------------------------------
def encrypt_labels(pk: PublicKey, labels: np.ndarray, workers: int | None = None) -> np.ndarray:
    """Encrypt every label (fresh randomness each); returns the wire array ``S{ciphertext_bytes}``."""
    values = np.asarray(labels, np.int64)
    if values.size == 0:
        return pk.to_array([])
    rows = -(-len(values) // available_workers(workers))  # one chunk per worker
    return np.concatenate(list(encrypt_chunks(pk, values, chunk_bounds(len(values), rows), workers)))


def chunk_bounds(n: int, chunk_rows: int) -> list[tuple[int, int]]:
    """``[lo, hi)`` row ranges of at most ``chunk_rows`` rows covering ``range(n)``."""
    return [(lo, min(lo + chunk_rows, n)) for lo in range(0, n, chunk_rows)]


def encrypt_chunks(
    pk: PublicKey, values: np.ndarray, bounds: Sequence[tuple[int, int]], workers: int | None = None
) -> Iterator[np.ndarray]:
    """Yield the wire array of each chunk's ciphertexts in order, as soon as it is ready (give at least
    as many chunks as workers to keep them all busy)."""
    n_workers = available_workers(workers)
    if n_workers == 1 or len(values) < POOL_MIN_ENCRYPTIONS:
        for lo, hi in bounds:
            yield pk.to_array(pk.encrypt_ints(values[lo:hi]))
        return
    per_worker = len(values) // n_workers
    with process_executor(n_workers, _context()) as pool:
        futures = [pool.submit(_encrypt_task, pk.to_wire(), values[lo:hi], per_worker) for lo, hi in bounds]
        for f in futures:
            yield _result(f)


def _result(fut: Future[Any]) -> Any:
    try:
        return fut.result()
    except BrokenProcessPool as exc:
        raise ConfigError(
            "worker processes died while starting; a script that runs a job must guard its entry point "
            "with `if __name__ == '__main__':` (or set workers=1)"
        ) from exc


def _split_points(n: int, parts: int) -> tuple[np.ndarray, np.ndarray]:
    edges = np.linspace(0, n, parts + 1).astype(int)
    return edges[:-1], edges[1:]


# worker-process cache: one key object (and its fixed-base tables) per key, built once per worker
_KEYS: dict[tuple[str, int], PublicKey] = {}


def _worker_key(pk_wire: dict[str, Any], expected_use: int) -> PublicKey:
    ident = (str(pk_wire["scheme"]), int(pk_wire["n"]))
    if ident not in _KEYS:
        pk = public_key_from_wire(pk_wire)
        if expected_use >= WIDE_TABLE_MIN:
            pk.warm_up(window=10)  # 23 windows instead of 28 per randomiser; the table costs ~0.1 s
        _KEYS[ident] = pk
    return _KEYS[ident]


def _encrypt_task(pk_wire: dict[str, Any], values: np.ndarray, expected_use: int) -> np.ndarray:
    pk = _worker_key(pk_wire, expected_use)
    return pk.to_array(pk.encrypt_ints(values))


class ZeroEncryptions:
    """Encryptions of zero computed ahead of a job, each handed out at most once.

    Encrypting is the slow part of a WOE job (one fixed-base exponentiation per row). An encryption
    of zero is a pure randomiser ``Enc(0; r)``, independent of the data, so the label party can make
    them before the job (e.g. while PSI runs) and then encrypt each label with one multiplication:
    ``Enc(y_i) = E_{y_i} * Z_i`` with ``E_0``, ``E_1`` fresh encryptions of 0 and 1 made once per job
    and ``Z_i`` an unused encryption of zero. Every ``Z_i`` is independent and used once, so each
    ciphertext carries fresh randomness exactly as :meth:`PublicKey.rerandomize` gives. The pool
    never hands a randomiser out twice (:meth:`take` removes what it returns).
    """

    def __init__(self, pk: PublicKey, zeros: list[mpz]) -> None:
        self.pk = pk
        self._zeros = zeros

    @classmethod
    def precompute(cls, pk: PublicKey, n: int, workers: int | None = None) -> ZeroEncryptions:
        """``n`` fresh encryptions of zero, made on ``workers`` processes."""
        return cls(pk, pk.from_array(encrypt_labels(pk, np.zeros(n, np.int64), workers)))

    def __len__(self) -> int:
        return len(self._zeros)

    def take(self, k: int) -> list[mpz]:
        if k > len(self._zeros):
            raise CryptoError(
                f"{k} encryptions of zero needed, {len(self._zeros)} precomputed: precompute at least the row count"
            )
        out = self._zeros[:k]
        del self._zeros[:k]
        return out

    def encrypt_bits(self, values: np.ndarray) -> np.ndarray:
        """Wire array of ``Enc(v)`` for 0/1 ``values``, one multiplication each."""
        v = np.asarray(values)
        if v.size and (int(v.min()) < 0 or int(v.max()) > 1):
            raise CryptoError("precomputed encryption takes labels 0 and 1 only")
        base = self.pk.encrypt_ints([0, 1])  # fresh for this call
        m = self.pk.modulus
        zeros = self.take(len(v))
        return self.pk.to_array([base[b] * z % m for b, z in zip(v.tolist(), zeros, strict=True)])


# --- bin sums ------------------------------------------------------------------------------------
def plan_groups(n_rows: int, n_bins: Sequence[int]) -> list[list[int]]:
    """Consecutive groups of feature indices that minimise multiplications per feature (greedy)."""
    groups: list[list[int]] = []
    cur: list[int] = []
    cells = 1
    for j, b in enumerate(n_bins):
        if cur:
            now = _group_cost(n_rows, len(cur), cells) / len(cur)
            grown = _group_cost(n_rows, len(cur) + 1, cells * b) / (len(cur) + 1)
            if len(cur) < MAX_GROUP and grown < now:
                cur.append(j)
                cells *= b
                continue
            groups.append(cur)
        cur, cells = [j], b
    if cur:
        groups.append(cur)
    return groups


def _group_cost(n_rows: int, k: int, cells: int) -> int:
    return n_rows if k == 1 else n_rows + k * min(cells, n_rows)


def group_bin_sums(
    pk: PublicKey, cts: Sequence[mpz], codes: Sequence[np.ndarray], n_bins: Sequence[int]
) -> list[list[mpz]]:
    """Per-bin homomorphic sums of one group of features via their joint cells."""
    if len(codes) == 1:
        return [pk.bin_sums(cts, codes[0], n_bins[0])]
    joint = np.zeros(len(cts), np.int64)
    for c, b in zip(codes, n_bins, strict=True):
        joint = joint * b + c
    cells, cell_of_row = np.unique(joint, return_inverse=True)
    cell_sums = pk.bin_sums(cts, cell_of_row.reshape(-1), len(cells))
    strides = np.cumprod([1, *n_bins[:0:-1]])[::-1]  # stride of each feature in the joint index
    return [pk.bin_sums(cell_sums, (cells // int(s)) % b, b) for s, b in zip(strides, n_bins, strict=True)]


def all_bin_sums(
    pk: PublicKey, cts: Sequence[mpz], codes: Sequence[np.ndarray], n_bins: Sequence[int]
) -> list[list[mpz]]:
    """Per-bin sums of every feature over ``cts`` in this process (grouped by :func:`plan_groups`)."""
    results: list[list[mpz]] = [[] for _ in codes]
    for g in plan_groups(len(cts), n_bins):
        sums = group_bin_sums(pk, cts, [codes[j] for j in g], [n_bins[j] for j in g])
        for j, s in zip(g, sums, strict=True):
            results[j] = s
    return results


class BinSumAccumulator:
    """The feature party's per-bin encrypted sums of every feature, fed chunk by chunk.

    ``codes[j][i]`` is row ``i``'s bin of feature ``j``. With ``workers > 1`` and enough work, each
    chunk's partial sums run in worker processes (started at once, so they start while the first
    chunk is still being encrypted) and :meth:`result` multiplies the partials; otherwise they are
    summed here. Empty bins come back as the trivial encryption 1: the caller re-randomises every sum.
    """

    def __init__(
        self, pk: PublicKey, codes: Sequence[np.ndarray], n_bins: Sequence[int], workers: int | None = None
    ) -> None:
        self.pk = pk
        self.n_bins = [int(b) for b in n_bins]
        dtype = np.int16 if max(self.n_bins, default=1) < 2**15 else np.int64
        self.codes = [np.asarray(c, dtype) for c in codes]
        n = len(self.codes[0]) if self.codes else 0
        cost = sum(
            _group_cost(n, len(g), int(np.prod([n_bins[j] for j in g]))) for g in plan_groups(n, n_bins)
        )
        n_workers = available_workers(workers)
        self._pool: Executor | None = None
        if n_workers > 1 and cost >= POOL_MIN_MULTIPLICATIONS:
            self._pool = process_executor(n_workers, _context())
        self._acc: list[list[mpz]] = [[mpz(1)] * b for b in self.n_bins]
        self._pending: list[tuple[Future[list[np.ndarray]], shared_memory.SharedMemory | None]] = []

    def add(self, lo: int, cts: Sequence[mpz], cts_wire: np.ndarray) -> None:
        """Add rows ``lo .. lo + len(cts)``: ``cts`` parsed and checked, ``cts_wire`` the same as received."""
        hi = lo + len(cts)
        codes = [c[lo:hi] for c in self.codes]
        if self._pool is None:
            self._merge(all_bin_sums(self.pk, cts, codes, self.n_bins))
            return
        raw = np.ascontiguousarray(cts_wire)
        shm: shared_memory.SharedMemory | None = None
        if on_ray():  # other machines: the bytes travel with the task
            source: str | bytes = raw.tobytes()
        else:  # local workers read the chunk from shared memory, not through a pipe
            shm = shared_memory.SharedMemory(create=True, size=max(raw.nbytes, 1))
            np.ndarray(raw.shape, raw.dtype, buffer=shm.buf)[:] = raw
            source = shm.name
        fut = self._pool.submit(_chunk_task, self.pk.to_wire(), source, raw.dtype.str, len(cts), codes, self.n_bins)
        self._pending.append((fut, shm))

    def result(self) -> list[list[mpz]]:
        try:
            for fut, _ in self._pending:
                self._merge([self.pk.from_array(a) for a in _result(fut)])
        finally:
            self.close()
        return self._acc

    def close(self) -> None:
        """Stop the workers (waiting for running tasks), then free the shared memory they read."""
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
        for _, shm in self._pending:
            if shm is not None:
                shm.close()
                shm.unlink()
        self._pending = []

    def _merge(self, partial: list[list[mpz]]) -> None:
        m = self.pk.modulus
        for acc, part in zip(self._acc, partial, strict=True):
            for b, c in enumerate(part):
                acc[b] = acc[b] * c % m


def bin_sums_by_feature(
    pk: PublicKey,
    cts: Sequence[mpz],
    cts_wire: np.ndarray,
    codes: Sequence[np.ndarray],
    n_bins: Sequence[int],
    workers: int | None = None,
) -> list[list[mpz]]:
    """Per-bin sums of every feature over all of ``cts`` at once (one chunk per worker)."""
    acc = BinSumAccumulator(pk, codes, n_bins, workers)
    parts = available_workers(workers) if acc._pool is not None else 1
    for lo, hi in zip(*_split_points(len(cts), parts), strict=True):
        acc.add(int(lo), cts[lo:hi], cts_wire[lo:hi])
    return acc.result()


def _chunk_task(
    pk_wire: dict[str, Any], source: str | bytes, dtype: str, n: int, codes: list[np.ndarray], n_bins: list[int]
) -> list[np.ndarray]:
    """Worker: partial bin sums of one chunk of rows for every feature, as wire arrays. ``source``:
    the name of the shared memory holding the chunk's ciphertexts, or (on Ray) their bytes."""
    pk = _worker_key(pk_wire, 0)
    if isinstance(source, bytes):
        arr: np.ndarray = np.frombuffer(source, np.dtype(dtype), count=n).copy()
    else:
        shm = shared_memory.SharedMemory(name=source)
        try:
            arr = np.ndarray((n,), np.dtype(dtype), buffer=shm.buf).copy()
        finally:
            shm.close()
    sums = all_bin_sums(pk, pk.from_array(arr), codes, n_bins)
    return [pk.to_array(s) for s in sums]
