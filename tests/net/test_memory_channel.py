from __future__ import annotations

import threading

import numpy as np
import pytest

from misuan.errors import PeerDisconnectedError, PeerTimeoutError, UnexpectedMessageError
from misuan.net.memory import MemoryNetwork
from misuan.protocols.secure_sum import PartialSum, Share


def test_send_recv_in_sequence_and_counts() -> None:
    net = MemoryNetwork(["bank", "partner"], job_id="j1")
    ch = net.channels()
    for i in range(3):
        ch["bank"].send("partner", "s", {"i": i})
    assert [ch["partner"].recv("bank", "s")["i"] for _ in range(3)] == [0, 1, 2]
    assert ch["bank"].stats.bytes_sent == ch["partner"].stats.bytes_received > 0
    assert ch["bank"].stats.per_peer["partner"].messages_sent == 3
    assert ch["bank"].stats.rounds == 1


def test_steps_are_independent_queues() -> None:
    ch = MemoryNetwork(["a", "b"]).channels()
    ch["a"].send("b", "x", 1)
    ch["a"].send("b", "y", 2)
    assert ch["b"].recv("a", "y") == 2 and ch["b"].recv("a", "x") == 1


def test_expect_type_checked() -> None:
    ch = MemoryNetwork(["a", "b"]).channels()
    ch["a"].send("b", "x", Share(np.zeros(2, np.uint64)))
    with pytest.raises(UnexpectedMessageError, match="expected PartialSum"):
        ch["b"].recv("a", "x", expect=PartialSum)


def test_timeout_and_disconnect() -> None:
    ch = MemoryNetwork(["a", "b"]).channels(timeout_s=0.2)
    with pytest.raises(PeerTimeoutError, match="from a"):
        ch["b"].recv("a", "x")
    t = threading.Timer(0.05, ch["a"].close)
    t.start()
    ch["b"].timeout_s = 5
    with pytest.raises(PeerDisconnectedError, match="a disconnected"):
        ch["b"].recv("a", "x")
    with pytest.raises(PeerDisconnectedError):
        ch["b"].send("a", "x", 1)


def test_unknown_peer_refused() -> None:
    ch = MemoryNetwork(["a", "b"]).channels()
    with pytest.raises(ValueError, match="not a peer"):
        ch["a"].send("mallory", "x", 1)


def test_sender_blocked_on_a_full_mailbox_is_released_when_the_receiver_closes() -> None:
    from misuan.net.channel import Mailbox

    box = Mailbox(capacity_bytes=10)
    box.put("a", "x", 0, b"0123456789")
    errors: list[BaseException] = []

    def blocked_put() -> None:
        try:
            box.put("a", "x", 1, b"more")
        except PeerDisconnectedError as exc:
            errors.append(exc)

    t = threading.Thread(target=blocked_put)
    t.start()
    t.join(0.2)
    assert t.is_alive()  # back-pressure: waits for the receiver to drain
    box.close_receiver()
    t.join(3)
    assert not t.is_alive() and errors and "receiver closed" in str(errors[0])
