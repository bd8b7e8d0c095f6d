"""Run every party of a protocol in one process, each in its own thread, over given channels.

Used by tests and notebooks; the same party functions run unchanged in separate processes over gRPC.
If any party fails, the others' channels are closed so they stop with :class:`PeerDisconnectedError`
instead of waiting out their timeout, and the first real error is re-raised.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping
from typing import Any

from misuan.errors import PeerDisconnectedError
from misuan.net.channel import Channel

PartyFn = Callable[[Channel], Any]


def run_concurrently(fns: Mapping[str, Callable[[], Any]], on_failure: Callable[[str], None]) -> dict[str, Any]:
    """Call every ``fns[p]()`` in its own thread; return each result, or raise the first real error.

    ``on_failure(p)`` runs as soon as party ``p`` fails, to release the peers waiting on it (close its
    channel), so they stop with :class:`PeerDisconnectedError` instead of waiting out their timeout.
    """
    results: dict[str, Any] = {}
    errors: dict[str, BaseException] = {}

    def run(party: str) -> None:
        try:
            results[party] = fns[party]()
        except BaseException as exc:  # noqa: BLE001 - re-raised below in the caller's thread
            errors[party] = exc
            on_failure(party)

    threads = [threading.Thread(target=run, args=(p,), name=f"party-{p}", daemon=True) for p in fns]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        # a peer's PeerDisconnectedError is a consequence; report the cause first
        causes = [e for e in errors.values() if not isinstance(e, PeerDisconnectedError)]
        raise (causes or list(errors.values()))[0]
    return results


def run_parties(channels: Mapping[str, Channel], fns: Mapping[str, PartyFn]) -> dict[str, Any]:
    """Call ``fns[p](channels[p])`` for every party concurrently; return each party's result."""
    if set(channels) != set(fns):
        raise ValueError(f"channels for {sorted(channels)} but functions for {sorted(fns)}")
    return run_concurrently(
        {p: functools.partial(fns[p], channels[p]) for p in fns}, on_failure=lambda p: channels[p].close()
    )
