"""Run every party of a protocol in one process, each in its own thread, over given channels.

Used by tests and notebooks; the same party functions run unchanged in separate processes over gRPC.
If any party fails, the others' channels are closed so they stop with :class:`PeerDisconnectedError`
instead of waiting out their timeout, and the first real error is re-raised.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from misuan.errors import PeerDisconnectedError
from misuan.net.channel import Channel

PartyFn = Callable[[Channel], Any]


def run_parties(channels: Mapping[str, Channel], fns: Mapping[str, PartyFn]) -> dict[str, Any]:
    """Call ``fns[p](channels[p])`` for every party concurrently; return each party's result."""
    if set(channels) != set(fns):
        raise ValueError(f"channels for {sorted(channels)} but functions for {sorted(fns)}")
    results: dict[str, Any] = {}
    errors: dict[str, BaseException] = {}

    def run(party: str) -> None:
        try:
            results[party] = fns[party](channels[party])
        except BaseException as exc:  # noqa: BLE001 - re-raised below in the caller's thread
            errors[party] = exc
            channels[party].close()

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
