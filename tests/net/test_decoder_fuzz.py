"""Every decoder, fuzzed: only typed errors, and memory bounded by the bytes received (issue #11, 2 and 3).

Property-based (Hypothesis): random bytes, valid encodings of every registered message and mutated
ones go through ``wire.decode``, the expected-type check, the frame header and hello parsers
(:mod:`tests.decoder_fuzz`). Then the worst payload shapes (many tiny values) at a few MiB, the
array that made ``reshape`` raise ``ValueError``, oversized messages of a small type, and the
mailbox's message-count bound.
"""

from __future__ import annotations

import threading
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from misuan.errors import MalformedMessageError, PeerDisconnectedError, UnexpectedMessageError
from misuan.net import wire
from misuan.net.channel import DEFAULT_MAILBOX_MESSAGES, Mailbox
from misuan.net.memory import MemoryNetwork
from misuan.node.runner import CONTROL_MESSAGE_BYTES, JobHello
from tests.decoder_fuzz import (
    WORST_ITEMS,
    FuzzTally,
    decode_checked,
    decoded_ratio,
    decoded_rss_ratio,
    fuzz_inputs,
    worst_payload,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(fuzz_inputs())
def test_every_decoder_raises_only_typed_errors_within_the_memory_bound(case: tuple[str | None, bytes]) -> None:
    expect, data = case
    tally = FuzzTally()
    tracemalloc.start()
    try:
        decode_checked(data, expect, tally)
    finally:
        tracemalloc.stop()
    assert not tally.untyped, tally.untyped


@pytest.mark.parametrize("shape", list(WORST_ITEMS))
def test_worst_payload_shapes_decode_to_at_most_nine_bytes_per_byte(shape: str) -> None:
    ratio, refused = decoded_ratio(worst_payload(WORST_ITEMS[shape], 256 << 10))
    # the budget is 8 bytes of objects per byte received (+64 KiB); the allocator adds a little
    assert ratio <= wire.DECODED_BYTES_PER_BYTE + 1, (shape, ratio, refused)


def test_four_mib_of_zero_d_arrays_is_refused_at_the_bound() -> None:
    """Finding 2: 16 MiB of 0-d arrays used to decode to ~460 MiB of objects (4 MiB here: the ratio is
    the same, and decoding 16 MiB took 13 s of the suite).

    Measured as a fresh process's peak resident memory (tracing MiBs of tiny objects is slow)."""
    ratio, refused = decoded_rss_ratio("0-d arrays", 4 << 20)
    assert refused and ratio <= wire.DECODED_BYTES_PER_BYTE + 1, ratio


def test_an_array_numpy_cannot_shape_is_a_malformed_message() -> None:
    """Finding 3: shape (0, 2**63) raised ValueError from reshape."""
    for shape in ((0, 2**63), (0, 2**62, 4), (2**64 - 1, 0)):
        data = b"a\x01\x01\x00\x00\x00" + bytes([len(shape)]) + b"".join(d.to_bytes(8, "little") for d in shape)
        with pytest.raises(MalformedMessageError):
            wire.decode(data)


def test_a_small_message_type_is_refused_by_size_and_type_before_decoding() -> None:
    """Finding 2: 32 MiB sent where a JobHello is expected is refused from its first bytes."""
    assert wire.max_bytes("job.Hello") == CONTROL_MESSAGE_BYTES
    big = wire.encode(JobHello("x" * (32 << 20), []))
    tracemalloc.start()
    try:
        with pytest.raises(MalformedMessageError, match="at most 65536 bytes"):
            wire.check_expected(big, JobHello, "partner", "job/hello")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 10  # nothing was decoded
    with pytest.raises(UnexpectedMessageError, match="expected JobHello"):
        wire.check_expected(wire.encode([1, 2]), JobHello, "partner", "job/hello")
    # over a channel: the receiver refuses it the same way
    ch = MemoryNetwork(["a", "b"]).channels(timeout_s=5)
    ch["a"].send("b", "job/hello", JobHello("x" * (1 << 20), []))
    with pytest.raises(MalformedMessageError, match="job.Hello of .* bytes; that type is at most"):
        ch["b"].recv("a", "job/hello", expect=JobHello)


def test_scalar_messages_get_a_small_bound_and_bulk_ones_the_channel_limit() -> None:
    assert wire.max_bytes("transport.Hello") == wire.SCALAR_MESSAGE_BYTES
    assert wire.max_bytes("woe.LabelChunk") is None  # carries ciphertext arrays: bounded by the channel


def test_mailbox_bounds_the_number_of_waiting_messages() -> None:
    """Finding 2: 20,000 zero-byte messages on unused steps grew the mailbox without limit."""
    box = Mailbox()
    done: list[BaseException | int] = []

    def flood() -> None:
        try:
            for i in range(20_000):
                box.put("partner", f"unused/{i}", 0, b"")
            done.append(20_000)
        except PeerDisconnectedError as exc:
            done.append(exc)

    t = threading.Thread(target=flood, daemon=True)
    t.start()
    t.join(timeout=3)
    assert t.is_alive() and len(box) == DEFAULT_MAILBOX_MESSAGES  # the sender waits: back-pressure
    box.get("partner", "unused/0", 0, timeout=1)  # one consumed: one more fits
    t.join(timeout=0.5)
    assert len(box) == DEFAULT_MAILBOX_MESSAGES
    box.close_receiver()  # the receiver is gone: the blocked sender is refused, not left hanging
    t.join(timeout=5)
    assert not t.is_alive() and isinstance(done[0], PeerDisconnectedError)


def test_decoded_arrays_stay_views_of_the_received_buffer() -> None:
    buf = bytearray(wire.encode(np.arange(12, dtype=np.int64).reshape(3, 4)))
    arr = wire.decode(buf)
    assert arr.shape == (3, 4) and arr.flags.writeable and np.shares_memory(arr, np.frombuffer(buf, np.uint8))
