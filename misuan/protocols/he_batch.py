"""Batched homomorphic work of the WOE protocol: label encryption and per-bin sums, over cores.

Two costs dominate a WOE job: the label party encrypts one label per row, and the feature party
multiplies every row's ciphertext into one bin per feature. Both parallelise over processes (the
GIL serialises gmpy2 calls within one process); workers are spawned, not forked, because the
protocol runs inside threads.

Bin sums share work across features: rows are first summed into the *joint cells* of a group of
features (their bin-index tuples), and each feature's bins are then summed from those cells. With
``n`` rows and features of ``B`` bins, a group of ``k`` features costs ``n + k * min(B**k, n)``
multiplications instead of ``k * n``; for ``B = 10`` and ``k = 3`` that is about a third. The result
is the same homomorphic sum (multiplication is associative and commutative); only the order of the
multiplications changes. No secret is involved in choosing the groups.

Ciphertexts reach the workers through shared memory as the fixed-width bytes of the wire format;
nothing is pickled from what a peer sent (only our own public key, bin indices and results).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import resource_tracker, shared_memory
from typing import Any

import numpy as np
from gmpy2 import mpz

from misuan.crypto.he import PublicKey, public_key_from_wire

# below this many ciphertext multiplications starting worker processes costs more than it saves
POOL_MIN_MULTIPLICATIONS = 600_000
POOL_MIN_ENCRYPTIONS = 20_000
MAX_GROUP = 6  # features per joint-cell group


def available_workers(requested: int | None) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(requested or cores, cores))


# --- encryption ----------------------------------------------------------------------------------
def encrypt_labels(pk: PublicKey, labels: np.ndarray, workers: int | None = None) -> np.ndarray:
    """Encrypt every label (fresh randomness each); returns the wire array ``S{ciphertext_bytes}``."""
    n_workers = available_workers(workers)
    if n_workers == 1 or len(labels) < POOL_MIN_ENCRYPTIONS:
        return pk.to_array(pk.encrypt_ints(labels))
    chunks = np.array_split(np.asarray(labels, np.int64), n_workers * 4)
    with ProcessPoolExecutor(n_workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        parts = list(pool.map(_encrypt_chunk, [pk.to_wire()] * len(chunks), chunks))
    return np.concatenate(parts)


def _encrypt_chunk(pk_wire: dict[str, Any], values: np.ndarray) -> np.ndarray:
    pk = public_key_from_wire(pk_wire)
    return pk.to_array(pk.encrypt_ints(values))


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
    out = []
    stride = 1
    strides = []
    for b in reversed(n_bins):
        strides.append(stride)
        stride *= b
    for c_stride, b in zip(reversed(strides), n_bins, strict=True):
        out.append(pk.bin_sums(cell_sums, (cells // c_stride) % b, b))
    return out


def bin_sums_by_feature(
    pk: PublicKey,
    cts: Sequence[mpz],
    cts_wire: np.ndarray,
    codes: Sequence[np.ndarray],
    n_bins: Sequence[int],
    workers: int | None = None,
) -> list[list[mpz]]:
    """Homomorphic per-bin sums of ``cts`` for every feature (``codes[j][i]``: row i's bin of feature j).

    ``cts_wire`` is the same ciphertexts as received (``S{ciphertext_bytes}``), shared with workers.
    Empty bins come back as the trivial encryption 1: the caller re-randomises every sum.
    """
    n = len(cts)
    groups = plan_groups(n, n_bins)
    cost = sum(_group_cost(n, len(g), int(np.prod([n_bins[j] for j in g]))) for g in groups)
    n_workers = min(available_workers(workers), len(groups))
    results: list[list[mpz]] = [[] for _ in codes]
    if n_workers == 1 or cost < POOL_MIN_MULTIPLICATIONS:
        for g in groups:
            for j, sums in zip(
                g, group_bin_sums(pk, cts, [codes[j] for j in g], [n_bins[j] for j in g]), strict=True
            ):
                results[j] = sums
        return results
    raw = np.ascontiguousarray(cts_wire)
    shm = shared_memory.SharedMemory(create=True, size=max(raw.nbytes, 1))
    try:
        np.ndarray(raw.shape, raw.dtype, buffer=shm.buf)[:] = raw
        ctx = multiprocessing.get_context("spawn")
        init = (pk.to_wire(), shm.name, raw.dtype.str, n)
        with ProcessPoolExecutor(n_workers, mp_context=ctx, initializer=_attach, initargs=init) as pool:
            # largest groups first so the last finishing worker is not holding a big one
            order = sorted(range(len(groups)), key=lambda k: -len(groups[k]))
            futures = {
                k: pool.submit(_group_task, [codes[j] for j in groups[k]], [n_bins[j] for j in groups[k]])
                for k in order
            }
            for k, fut in futures.items():
                for j, arr in zip(groups[k], fut.result(), strict=True):
                    results[j] = pk.from_array(arr)
    finally:
        shm.close()
        shm.unlink()
    return results


# worker-process state: the public key and the ciphertexts, parsed once per worker
_WORKER: dict[str, Any] = {}


def _attach(pk_wire: dict[str, Any], shm_name: str, dtype: str, n: int) -> None:
    pk = public_key_from_wire(pk_wire)
    shm = shared_memory.SharedMemory(name=shm_name)
    # the parent owns (and unlinks) the segment; before Python 3.13 attaching also registers it with
    # the resource tracker, which would try to unlink it a second time
    resource_tracker.unregister(shm._name, "shared_memory")  # type: ignore[attr-defined]
    try:
        arr = np.ndarray((n,), np.dtype(dtype), buffer=shm.buf).copy()
    finally:
        shm.close()
    _WORKER["pk"] = pk
    _WORKER["cts"] = pk.from_array(arr)


def _group_task(codes: list[np.ndarray], n_bins: list[int]) -> list[np.ndarray]:
    pk: PublicKey = _WORKER["pk"]
    sums = group_bin_sums(pk, _WORKER["cts"], codes, n_bins)
    return [pk.to_array(s) for s in sums]
