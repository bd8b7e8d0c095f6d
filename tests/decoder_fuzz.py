"""What the decoder fuzz test and ``bench/hardening.py`` share: inputs, the decoders, and the one rule.

The rule (:func:`decode_checked`): whatever the bytes, a decoder either returns or raises
:class:`MalformedMessageError` (or, for a well-formed message of another type,
:class:`UnexpectedMessageError`), and the objects it creates stay within
``wire.decode_budget(len(bytes))`` plus one object's worth of allocator slack. Inputs are random
bytes and valid encodings of every registered message, built from its field types, then cut,
spliced and bit-flipped (:func:`fuzz_inputs`).
"""

from __future__ import annotations

import dataclasses
import tracemalloc
import types
import typing
from collections.abc import Callable
from typing import Any, Union, get_args, get_origin, get_type_hints

import numpy as np
from hypothesis import strategies as st

import misuan.net.grpc_framing as framing
import misuan.node.anchoring
import misuan.node.runner
import misuan.protocols
from misuan.errors import MalformedMessageError, UnexpectedMessageError
from misuan.net import wire

assert misuan.node.runner and misuan.node.anchoring and misuan.protocols  # their messages register on import
TYPED_ERRORS = (MalformedMessageError, UnexpectedMessageError)
ALLOCATOR_SLACK = 4096  # one object past the budget, and tracemalloc's own bookkeeping


def _register_protocols() -> dict[str, type]:
    import importlib
    import pkgutil

    for m in pkgutil.iter_modules(misuan.protocols.__path__):
        importlib.import_module(f"misuan.protocols.{m.name}")
    return wire.registered_messages()


MESSAGES = _register_protocols()
_ARRAY_DTYPES = [np.uint8, np.int32, np.int64, np.uint64, np.float64, np.bool_, "S8"]


def values_for(hint: Any, depth: int = 0) -> st.SearchStrategy[Any]:
    """Small values of a field annotation (what an honest peer could send, roughly)."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        return st.one_of([values_for(h, depth) for h in get_args(hint)])
    if origin is typing.Literal:
        return st.sampled_from(get_args(hint))
    if hint is type(None):
        return st.none()
    simple: dict[Any, st.SearchStrategy[Any]] = {
        int: st.integers(-(2**70), 2**70), float: st.floats(allow_nan=True), str: st.text(max_size=12),
        bytes: st.binary(max_size=24), bool: st.booleans(),
    }
    if hint in simple:
        return simple[hint]
    if hint is np.ndarray:
        return st.builds(_array, st.sampled_from(_ARRAY_DTYPES), st.lists(st.integers(0, 4), max_size=3))
    if origin in (list, tuple) and depth < 3:
        args = get_args(hint)
        return st.lists(values_for(args[0] if args else int, depth + 1), max_size=4)
    if origin is dict and depth < 3:
        args = get_args(hint)
        return st.dictionaries(st.text(max_size=6), values_for(args[1] if len(args) == 2 else int, depth + 1), max_size=3)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return message_values(hint, depth + 1)
    return st.integers(0, 9)


def _array(dtype: Any, shape: list[int]) -> np.ndarray:
    n = int(np.prod(shape)) if shape else 1
    return np.zeros(n, dtype=dtype).reshape(shape)


def message_values(cls: type, depth: int = 0) -> st.SearchStrategy[Any]:
    hints = get_type_hints(cls)
    fields = {f.name: values_for(hints[f.name], depth) for f in dataclasses.fields(cls)}
    return st.fixed_dictionaries(fields).map(lambda kw: _build(cls, kw))


def _build(cls: type, kw: dict[str, Any]) -> Any:
    try:
        return cls(**kw)
    except Exception:  # noqa: BLE001 - a message's own checks refused the drawn values: send it bare
        obj = object.__new__(cls)
        obj.__dict__.update(kw)
        return obj


def _encodable(msg: Any) -> bytes:
    try:
        return wire.encode(msg)
    except (TypeError, ValueError, OverflowError):
        return b"m"


def valid_encodings() -> st.SearchStrategy[tuple[str, bytes]]:
    """(wire name, encoding) of a message of any registered type."""
    return st.sampled_from(sorted(MESSAGES)).flatmap(
        lambda name: message_values(MESSAGES[name]).map(lambda m, n=name: (n, _encodable(m)))
    )


def _mutate(data: bytes, cuts: list[tuple[int, int, int]]) -> bytes:
    out = bytearray(data)
    for kind, pos, val in cuts:
        if not out:
            break
        i = pos % len(out)
        if kind == 0:
            out[i] ^= 1 << (val % 8)  # flip a bit
        elif kind == 1:
            del out[i:]  # truncate
        elif kind == 2:
            out[i:i] = val.to_bytes(8, "little")  # splice in a length-like number
        else:
            out[i] = val % 256
    return bytes(out)


def fuzz_inputs() -> st.SearchStrategy[tuple[str | None, bytes]]:
    """(the type a receiver expects or None, bytes): random, valid, and mutated valid encodings."""
    mutations = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2**16), st.integers(0, 2**64 - 1)), max_size=4)
    mutated = st.tuples(valid_encodings(), mutations).map(lambda t: (t[0][0], _mutate(t[0][1], t[1])))
    random_bytes = st.binary(max_size=256).map(lambda b: (None, b))
    return st.one_of(random_bytes, valid_encodings().map(lambda t: (t[0], t[1])), mutated)


# --- the decoders, and the rule -------------------------------------------------------------------
def _decode_as(expect: str | None) -> Callable[[bytes], Any]:
    def run(data: bytes) -> Any:
        cls = MESSAGES.get(expect) if expect else None
        wire.check_expected(data, cls, "peer", "fuzz")
        return wire.decode(bytearray(data))

    return run


def _frame(data: bytes) -> Any:
    return framing.parse_first_frame(b"MSN1" + len(data).to_bytes(4, "little") + data)


DECODERS: dict[str, Callable[[bytes], Any]] = {
    "wire.decode": lambda data: wire.decode(data),
    "frame header": _frame,
    "raw frame": framing.parse_first_frame,
    "transport hello": framing.parse_hello,
    "message type name": wire.message_name,
}


@dataclasses.dataclass
class FuzzTally:
    tried: int = 0
    untyped: list[str] = dataclasses.field(default_factory=list)
    worst_ratio: float = 0.0  # decoded bytes allocated per byte received, over inputs of 4 KiB or more


def decode_checked(data: bytes, expect: str | None, tally: FuzzTally) -> None:
    """Run every decoder on ``data``; count untyped errors and the memory each decode allocated."""
    decoders = dict(DECODERS, expected=_decode_as(expect))
    for name, decoder in decoders.items():
        tally.tried += 1
        traced = tracemalloc.is_tracing()
        if traced:
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
        try:
            decoder(data)
        except TYPED_ERRORS:
            pass
        except Exception as exc:  # noqa: BLE001 - exactly what the fuzz test looks for
            tally.untyped.append(f"{name}: {type(exc).__name__}: {exc} on {data[:64]!r}")
        if traced:
            used = tracemalloc.get_traced_memory()[1] - base
            if used > wire.decode_budget(len(data)) + ALLOCATOR_SLACK:
                tally.untyped.append(f"{name}: {used} bytes allocated for {len(data)} received")
            if len(data) >= 4096:
                tally.worst_ratio = max(tally.worst_ratio, used / len(data))


# --- the worst payload shapes: many tiny values ---------------------------------------------------
WORST_ITEMS: dict[str, bytes] = {
    "0-d arrays": b"a\x01\x01\x00\x00\x00\x00\x07",  # uint8, ndim 0, one data byte
    "empty 1-d arrays": b"a\x01\x01\x00\x00\x00\x01" + bytes(8),
    "empty lists": b"l" + bytes(8),
    "empty dicts": b"d" + bytes(8),
    "None": b"N",
    "1-char strings": b"s\x01\x00\x00\x00a",
    "small ints": b"i" + bytes(8),
    "tiny messages": wire.encode(framing.Hello("", "")),
}


def worst_payload(item: bytes, nbytes: int) -> bytes:
    """A list of as many copies of ``item`` as fit in ``nbytes``."""
    n = (nbytes - 9) // len(item)
    return b"l" + n.to_bytes(8, "little") + item * n


def decoded_ratio(payload: bytes) -> tuple[float, bool]:
    """(peak bytes allocated while decoding / bytes received, whether it was refused)."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        refused = False
        try:
            value = wire.decode(payload)
            del value
        except MalformedMessageError:
            refused = True
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return peak / len(payload), refused


_RSS_PROBE = """
import resource, sys
from misuan.net import wire
from misuan.errors import MalformedMessageError
from tests.decoder_fuzz import WORST_ITEMS, worst_payload
payload = worst_payload(WORST_ITEMS[sys.argv[1]], int(sys.argv[2]))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    value = wire.decode(payload)
    refused = 0
except MalformedMessageError:
    refused = 1
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) * 1024, refused)
"""


def decoded_rss_ratio(shape: str, nbytes: int) -> tuple[float, bool]:
    """Like :func:`decoded_ratio`, measured as the growth of a fresh process's peak resident memory
    (no tracing: fast enough for 16 MiB payloads)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", _RSS_PROBE, shape, str(nbytes)], cwd=root, capture_output=True, text=True, check=True,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
    ).stdout.split()
    return int(out[0]) / nbytes, out[1] == "1"
