"""Worker processes for big-number work, so one party uses every core (gmpy2 holds the GIL).

A :class:`WorkerPool` starts ``workers`` processes (``spawn``: safe when the caller runs threads),
each building one *handler* object from ``handler_cls(*init_args)`` and then serving calls
``(method, args)``. State that is expensive to ship (fixed-base tables, a tree's ciphertexts)
stays in the workers between calls; only small arguments and byte strings travel.
With ``workers <= 1`` the handler runs in the calling process: same results, no processes.

The pipes carry Python objects between this party's own processes only (never anything a peer
sent that has not already been parsed and checked), so pickling them is safe here.

:class:`HEWorker` is the handler for batch encryption and decryption: :func:`encrypt_batch` and
:func:`decrypt_batch` split a batch into chunks and run them on every worker.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing as mp
import multiprocessing.context
import os
from collections.abc import Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

from gmpy2 import mpz

from misuan import errors
from misuan.crypto.he import PrivateKey, PublicKey, private_key_from_wire, public_key_from_wire

__all__ = [
    "HEWorker", "WorkerPool", "checked_compute", "compute_target", "decrypt_batch", "default_workers", "encrypt_batch",
    "on_ray", "process_executor", "use_compute",
]

_COMPUTE = "local"  # where this process's worker pools run: "local", or a Ray address (use_compute)


def checked_compute(target: Any) -> str:
    """``target`` if it names where worker pools may run (``"local"`` or ``"ray:<address>"``), else ConfigError."""
    if not isinstance(target, str) or not (target == "local" or (target.startswith("ray:") and len(target) > 4)):
        raise errors.ConfigError(f'compute must be "local" or "ray:<address>" (e.g. "ray:auto"), not {target!r}')
    return target


def use_compute(target: str) -> None:
    """Where this party's worker pools run from now on: ``"local"`` (processes on this machine) or
    a Ray cluster the party runs (``"ray:auto"``, ``"ray:ray://head:10001"``, or ``"ray:local"``
    for a one-machine cluster started here); see :mod:`misuan.crypto.ray_pool`."""
    global _COMPUTE
    _COMPUTE = checked_compute(target)


def compute_target() -> str:
    return _COMPUTE


def on_ray() -> bool:
    """Whether this process's worker pools and tasks run on a Ray cluster (their inputs then travel
    by value: no shared memory between machines)."""
    return _COMPUTE != "local"


def process_executor(workers: int, mp_context: multiprocessing.context.BaseContext) -> concurrent.futures.Executor:
    """Where a protocol's stateless tasks (module-level functions) run: ``workers`` local processes
    from ``mp_context``, or Ray tasks on the party's cluster (:func:`use_compute`)."""
    if _COMPUTE == "local":
        return concurrent.futures.ProcessPoolExecutor(workers, mp_context=mp_context)
    from misuan.crypto.ray_pool import RayTasks

    return RayTasks(_COMPUTE[len("ray:"):])


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def _serve(conn: Connection, handler_cls: type, init_args: tuple[Any, ...]) -> None:
    try:
        handler = handler_cls(*init_args)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        conn.send(("error", type(exc).__name__, str(exc)))
        return
    conn.send(("ready", None, None))
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        method, args = msg
        try:
            conn.send(("ok", getattr(handler, method)(*args), None))
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            conn.send(("error", type(exc).__name__, str(exc)))


def _raise(kind: str, message: str) -> None:
    cls = getattr(errors, kind, None)
    if isinstance(cls, type) and issubclass(cls, errors.MisuanError):
        raise cls(message)
    raise errors.MisuanError(f"worker process failed: {kind}: {message}")


class WorkerPool:
    def __init__(self, handler_cls: type, init_args: tuple[Any, ...], workers: int | None = None) -> None:
        self.workers = default_workers() if workers is None else max(1, int(workers))
        self._local: Any = None
        self._ray: Any = None
        self._conns: list[Connection] = []
        self._procs: list[Any] = []
        if _COMPUTE != "local" and (workers is None or workers > 1):  # the party's Ray cluster
            from misuan.crypto.ray_pool import RayActors

            self._ray = RayActors(handler_cls, init_args, workers, _COMPUTE[len("ray:"):])
            self.workers = self._ray.workers
            return
        if mp.current_process().daemon:
            # a daemonic process may not start children (multiprocessing's rule): work in-process
            self.workers = 1
        if self.workers == 1:
            self._local = handler_cls(*init_args)
            return
        ctx = mp.get_context("spawn")
        for i in range(self.workers):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_serve, args=(child, handler_cls, init_args), name=f"misuan-worker-{i}", daemon=True)
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)
        for conn in self._conns:
            self._reply(conn)

    def _reply(self, conn: Connection) -> Any:
        try:
            status, value, message = conn.recv()
        except EOFError as exc:
            raise errors.MisuanError("a worker process died (out of memory?)") from exc
        if status == "error":
            _raise(value, message)
        return value

    def broadcast(self, method: str, *args: Any) -> list[Any]:
        """Call ``method(*args)`` on every worker; one result per worker."""
        if self._ray is not None:
            return self._ray.broadcast(method, *args)
        if self._local is not None:
            return [getattr(self._local, method)(*args)]
        for conn in self._conns:
            conn.send((method, args))
        return [self._reply(conn) for conn in self._conns]

    def scatter(self, method: str, per_worker: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Call ``method(*per_worker[k])`` on worker ``k`` (one argument tuple per worker: a shard each)."""
        if len(per_worker) != self.workers:
            raise ValueError(f"scatter needs {self.workers} argument tuples, one per worker, not {len(per_worker)}")
        if self._ray is not None:
            return self._ray.scatter(method, per_worker)
        if self._local is not None:
            return [getattr(self._local, method)(*per_worker[0])]
        for conn, args in zip(self._conns, per_worker, strict=True):
            conn.send((method, tuple(args)))
        return [self._reply(conn) for conn in self._conns]

    def map(self, method: str, tasks: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Run ``method(*task)`` for every task on whichever worker is free; results in task order.

        Give tasks in decreasing cost for the best balance (longest first)."""
        if self._ray is not None:
            return self._ray.map(method, tasks)
        if self._local is not None:
            return [getattr(self._local, method)(*t) for t in tasks]
        results: list[Any] = [None] * len(tasks)
        pending = list(range(len(tasks)))[::-1]
        busy: dict[Connection, int] = {}
        for conn in self._conns:
            if pending:
                i = pending.pop()
                conn.send((method, tasks[i]))
                busy[conn] = i
        while busy:
            for ready in wait(list(busy)):
                c = next(k for k in busy if k is ready)
                i = busy.pop(c)
                results[i] = self._reply(c)
                if pending:
                    j = pending.pop()
                    c.send((method, tasks[j]))
                    busy[c] = j
        return results

    def close(self) -> None:
        if self._ray is not None:
            self._ray.close()
            self._ray = None
        for conn in self._conns:
            try:
                conn.send(None)
                conn.close()
            except OSError:
                pass
        for proc in self._procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
        self._conns, self._procs = [], []

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class HEWorker:
    """Handler holding a key (and its fixed-base tables) in a worker process."""

    def __init__(self, key_wire: dict[str, Any], private: bool, window: int) -> None:
        self.private: PrivateKey | None = private_key_from_wire(key_wire) if private else None
        self.public: PublicKey = self.private.public_key if self.private else public_key_from_wire(key_wire)
        self.public.warm_up(window)

    def encrypt(self, values: list[int]) -> bytes:
        nb = self.public.ciphertext_bytes
        return b"".join(c.to_bytes(nb, "big") for c in self.public.encrypt_ints(values))

    def decrypt(self, raw: bytes) -> list[int]:
        if self.private is None:
            raise errors.CryptoError("this worker holds no private key")
        nb = self.public.ciphertext_bytes
        return self.private.decrypt_ints([mpz.from_bytes(raw[i : i + nb], "big") for i in range(0, len(raw), nb)])


def _chunks(n: int, parts: int) -> list[tuple[int, int]]:
    parts = max(1, min(parts, n))
    step = -(-n // parts)
    return [(i, min(n, i + step)) for i in range(0, n, step)]


def encrypt_batch(pool: WorkerPool, public: PublicKey, values: Sequence[int]) -> bytes:
    """Encrypt on every worker; returns the concatenated fixed-width ciphertexts (``to_array`` layout)."""
    vals = [int(v) for v in values]
    for v in vals:
        if v < 0 or v.bit_length() > public.plaintext_bits:
            raise errors.CryptoError(f"plaintext {v} is outside [0, 2**{public.plaintext_bits})")
    tasks = [(vals[a:b],) for a, b in _chunks(len(vals), 4 * pool.workers)]
    return b"".join(pool.map("encrypt", tasks))


def decrypt_batch(pool: WorkerPool, public: PublicKey, raw: bytes) -> list[int]:
    nb = public.ciphertext_bytes
    n = len(raw) // nb
    tasks = [(raw[a * nb : b * nb],) for a, b in _chunks(n, 4 * pool.workers)]
    out: list[int] = []
    for part in pool.map("decrypt", tasks):
        out.extend(part)
    return out

