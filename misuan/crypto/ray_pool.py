"""A party's worker pool on a Ray cluster it runs: the same handlers and calls as :class:`~misuan.crypto.pool.WorkerPool`.

Where one machine's cores are not enough for a party's big-number work (HE encryption and
decryption, ciphertext bin sums), the party names a Ray cluster of its own (``compute`` in its node
config, :func:`misuan.crypto.pool.use_compute`); every :class:`~misuan.crypto.pool.WorkerPool` it
then opens is a set of Ray actors, one handler each, built from the same ``handler_cls(*init_args)``
and serving the same ``(method, args)`` calls, so results are identical to local workers.

The cluster is the party's own: it holds the party's private key material (an HE private key goes
to the actors as it goes to local worker processes), so it must sit inside the party's trust
boundary, like the node itself; only the node talks to peers. Ray serialises the arguments and
results between this party's own processes and machines (nothing a peer sent that has not been
parsed and checked first), as the local pool's pipes do.

Needs ``pip install 'misuan[ray]'``.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable, Sequence
from typing import Any

from misuan import errors

__all__ = ["RayActors", "RayTasks"]

_CONNECTING = threading.Lock()
_START_S = 120  # how long a pool's actors may take to start (a cluster that has no room fails, not hangs)


class _Handler:
    """The Ray actor: one handler, called by method name."""

    def __init__(self, handler_cls: type, init_args: tuple[Any, ...]) -> None:
        self.handler = handler_cls(*init_args)

    def call(self, method: str, args: tuple[Any, ...]) -> Any:
        return getattr(self.handler, method)(*args)

    def ready(self) -> bool:
        return True


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise errors.ConfigError("compute on a Ray cluster needs Ray: pip install 'misuan[ray]'") from exc
    return ray


def connect(address: str) -> None:
    """Join the party's Ray cluster at ``address`` (``"auto"``, ``"ray://host:10001"``), once per process.
    ``"local"`` starts a one-machine cluster here (tests, trials)."""
    ray = _ray()
    with _CONNECTING:  # the parties of a local test (threads) may start their pools at once
        if ray.is_initialized():
            return
        if address == "local":
            ray.init(include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)


class RayActors:
    """``workers`` actors (default: the cluster's CPUs) each holding ``handler_cls(*init_args)``."""

    def __init__(self, handler_cls: type, init_args: tuple[Any, ...], workers: int | None, address: str) -> None:
        ray = _ray()
        connect(address)
        self._ray = ray
        n = workers if workers is not None else max(1, int(ray.cluster_resources().get("CPU", 1)))
        # a token CPU share, spread over the cluster's machines: the pool's size sets the parallelism,
        # and two pools of one party (or the parties of a local test) never wait on each other's CPUs
        actor = ray.remote(num_cpus=0.01, scheduling_strategy="SPREAD")(_Handler)
        self._actors = [actor.remote(handler_cls, init_args) for _ in range(max(1, n))]
        self.workers = len(self._actors)
        try:
            self._get([a.ready.remote() for a in self._actors], timeout=_START_S)
        except ray.exceptions.GetTimeoutError as exc:
            self.close()
            raise errors.ConfigError(f"the Ray cluster at {address} did not start {n} workers in {_START_S} s") from exc

    def _get(self, futures: list[Any], timeout: float | None = None) -> list[Any]:
        try:
            return list(self._ray.get(futures, timeout=timeout))
        except self._ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, errors.MisuanError):
                raise type(cause)(str(cause)) from exc
            raise errors.MisuanError(f"a Ray worker failed: {cause!r}") from exc
        except self._ray.exceptions.RayActorError as exc:
            raise errors.MisuanError("a Ray worker died (out of memory, or its node lost?)") from exc

    def broadcast(self, method: str, *args: Any) -> list[Any]:
        return self._get([a.call.remote(method, args) for a in self._actors])

    def scatter(self, method: str, per_worker: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Actor ``k`` runs ``method(*per_worker[k])``."""
        return self._get([a.call.remote(method, tuple(args)) for a, args in zip(self._actors, per_worker, strict=True)])

    def map(self, method: str, tasks: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Tasks round-robin over the actors (each actor runs its calls in order); results in task order."""
        return self._get([self._actors[i % len(self._actors)].call.remote(method, t) for i, t in enumerate(tasks)])

    def close(self) -> None:
        for a in self._actors:
            self._ray.kill(a)
        self._actors = []


def _unwrapped(ray: Any, ref: Any) -> Any:
    """A task's result, its misuan error re-raised as itself (as a local process pool would)."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, errors.MisuanError):
            raise type(cause)(str(cause)) from exc
        raise errors.MisuanError(f"a Ray task failed: {cause!r}") from exc


class RayTasks(concurrent.futures.Executor):
    """A ``concurrent.futures`` executor whose tasks (module-level functions, as for a process pool)
    run as Ray tasks on the party's cluster, a CPU each: what the protocols that submit stateless
    tasks (WOE's encryptions and bin sums, ECDH-PSI's hashing and blinding) use there."""

    def __init__(self, address: str) -> None:
        self._ray = _ray()
        connect(address)
        self._remote: dict[Callable[..., Any], Any] = {}
        self._threads = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="ray-results")
        self._refs: list[Any] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        remote = self._remote.get(fn)
        if remote is None:
            remote = self._remote[fn] = self._ray.remote(num_cpus=1)(fn)
        ref = remote.remote(*args, **kwargs)
        self._refs.append(ref)
        return self._threads.submit(_unwrapped, self._ray, ref)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if cancel_futures:  # after an error: the cluster's CPUs stop on this job's tasks too
            for ref in self._refs:
                self._ray.cancel(ref)
        self._refs = []
        self._threads.shutdown(wait=wait, cancel_futures=cancel_futures)
