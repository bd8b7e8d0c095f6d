from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from misuan.errors import MalformedMessageError
from misuan.net import wire


@wire.message("test.Point")
@dataclasses.dataclass
class Point:
    name: str
    xs: np.ndarray
    n: int
    ids: list[bytes]
    note: str | None = None


def test_roundtrip_values() -> None:
    v = {
        "a": None, "b": True, "c": -5, "big": 3**200, "neg": -(2**100), "f": 1.5, "s": "信用 ✓",
        "raw": b"\x00\xff", "l": [1, "x", [2.0]],
        "arr": np.arange(12, dtype=np.int32).reshape(3, 4), "ct": np.array([b"ab", b"cd"], dtype="S2"),
        "bools": np.array([True, False]),
    }
    out = wire.decode(wire.encode(v))
    assert out["big"] == 3**200 and out["neg"] == -(2**100) and out["s"] == "信用 ✓"
    assert out["l"] == [1, "x", [2.0]] and out["raw"] == b"\x00\xff"
    np.testing.assert_array_equal(out["arr"], v["arr"])
    assert out["ct"].dtype == np.dtype("S2") and list(out["ct"]) == [b"ab", b"cd"]
    assert out["bools"].dtype == np.bool_


def test_message_roundtrip_and_type_check() -> None:
    p = Point("p", np.array([1.0, 2.0]), 3, [b"a"])
    q = wire.decode(wire.encode(p))
    assert isinstance(q, Point) and q.name == "p" and q.n == 3 and q.ids == [b"a"]
    # a str where an int is declared is refused
    forged = wire.encode(Point("p", np.array([1.0]), 3, [b"a"]))
    forged = forged.replace(b"i" + (3).to_bytes(8, "little"), b"s" + (1).to_bytes(4, "little") + b"3" + b"\x00" * 3)
    with pytest.raises(MalformedMessageError):
        wire.decode(forged)


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"Z",
        b"b" + (1 << 60).to_bytes(8, "little"),  # claims an exabyte
        b"l" + (1 << 40).to_bytes(8, "little"),
        b"a\x08\x08\x00\x00\x00\x01" + (1 << 50).to_bytes(8, "little"),  # huge array claim
        b"a\x63\x01\x00\x00\x00\x01\x01" + b"\x00" * 7,  # unknown dtype code
        b"m\x03\x00\x00\x00os.system\x00\x00\x00\x00"[:13],
        b"s\x02\x00\x00\x00\xff\xfe",  # bad utf-8
        b"N trailing",
    ],
)
def test_garbage_is_refused_without_big_allocation(blob: bytes) -> None:
    with pytest.raises(MalformedMessageError):
        wire.decode(blob)


def test_unknown_message_type_refused() -> None:
    blob = b"m" + (9).to_bytes(4, "little") + b"os.system" + (0).to_bytes(4, "little")
    with pytest.raises(MalformedMessageError, match="unknown message type"):
        wire.decode(blob)


def test_unregistered_dataclass_cannot_be_sent() -> None:
    @dataclasses.dataclass
    class Secret:
        x: int

    with pytest.raises(TypeError, match="not a registered wire message"):
        wire.encode(Secret(1))


def test_object_arrays_refused() -> None:
    with pytest.raises(TypeError):
        wire.encode(np.array([object()], dtype=object))


def test_depth_limit() -> None:
    v: list = []
    for _ in range(wire.MAX_DEPTH + 5):
        v = [v]
    with pytest.raises(ValueError):
        wire.encode(v)
