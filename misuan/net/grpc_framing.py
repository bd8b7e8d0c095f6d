"""The framing of misuan's gRPC transport: service name, frame limits, and the two header messages.

Service ``misuan.transport.v1.Transport`` carries bytes in and bytes out (no generated code). A
message travels as one frame (``Deliver``) or a client stream of frames (``DeliverStream``); its
first frame is ``b"MSN1" | u32 header length | FrameHeader | payload prefix``, and the rest of the
payload follows in frames of ``frame_bytes``. ``Ping`` and ``Watch`` carry a :class:`Hello`.
Both ends of :mod:`misuan.net.grpc_server` and :mod:`misuan.net.grpc_channel` use these.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Iterator, Sequence

from misuan.errors import MalformedMessageError
from misuan.net import wire

__all__ = [
    "FRAME_BYTES",
    "MAX_FRAME_BYTES",
    "MAX_HEADER_BYTES",
    "SERVICE",
    "FrameHeader",
    "Hello",
    "cut_into_frames",
    "encode_first_frame_head",
    "parse_first_frame",
    "parse_hello",
]

SERVICE = "misuan.transport.v1.Transport"
FRAME_BYTES = 1 << 20  # 1 MiB: large enough for full throughput, small enough to bound buffering
MAX_FRAME_BYTES = 4 << 20  # the server refuses larger frames (gRPC's receive limit)
MAX_HEADER_BYTES = 4096
_MAGIC = b"MSN1"
_U32 = struct.Struct("<I")


@wire.message("transport.FrameHeader")
@dataclasses.dataclass
class FrameHeader:
    job_id: str
    sender: str
    step: str
    seq: int
    size: int


@wire.message("transport.Hello")
@dataclasses.dataclass
class Hello:
    job_id: str
    sender: str


def encode_first_frame_head(header: FrameHeader) -> bytes:
    raw = wire.encode(header)
    return _MAGIC + _U32.pack(len(raw)) + raw


def parse_first_frame(frame: bytes) -> tuple[FrameHeader, memoryview]:
    """Split a message's first frame into its header and the payload bytes it carries."""
    if len(frame) < 8 or frame[:4] != _MAGIC:
        raise MalformedMessageError("frame does not start with the misuan transport magic")
    (hlen,) = _U32.unpack_from(frame, 4)
    if hlen > MAX_HEADER_BYTES or 8 + hlen > len(frame):
        raise MalformedMessageError(f"frame header of {hlen} bytes is over the limit or truncated")
    header = wire.decode(memoryview(frame)[8 : 8 + hlen])
    if not isinstance(header, FrameHeader):
        raise MalformedMessageError(f"first frame carries a {type(header).__name__}, not a FrameHeader")
    if header.seq < 0 or header.size < 0 or not header.step or len(header.step) > 512:
        raise MalformedMessageError(f"frame header has an invalid step, sequence or size: {header}")
    return header, memoryview(frame)[8 + hlen :]


def parse_hello(request: bytes) -> Hello:
    if len(request) > MAX_HEADER_BYTES:
        raise MalformedMessageError("hello message too long")
    hello = wire.decode(request)
    if not isinstance(hello, Hello):
        raise MalformedMessageError(f"expected a Hello, got {type(hello).__name__}")
    return hello


def cut_into_frames(head: bytes, parts: Sequence[bytes | memoryview], frame_bytes: int) -> Iterator[bytes]:
    """Cut ``head`` followed by ``parts`` into frames of ``frame_bytes``, copying one frame at a time.

    The parts are sliced as memoryviews, so sending a 300 MB array adds one frame of memory, not
    another 300 MB.
    """
    pending: list[bytes | memoryview] = [head]
    filled = len(head)
    for part in parts:
        mv = memoryview(part).cast("B")
        off = 0
        while off < mv.nbytes:
            take = min(frame_bytes - filled, mv.nbytes - off)
            pending.append(mv[off : off + take])
            filled += take
            off += take
            if filled == frame_bytes:
                yield b"".join(pending)
                pending, filled = [], 0
    if filled:
        yield b"".join(pending)
