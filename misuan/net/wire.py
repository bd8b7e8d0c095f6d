"""The one wire format: a typed, size-checked binary encoding. Never pickle.

A value is one of: ``None``, ``bool``, ``int`` (any size), ``float``, ``str``, ``bytes``,
``numpy.ndarray`` of an allow-listed dtype, ``list``/``tuple`` of values, ``dict`` with ``str`` keys,
or an instance of a dataclass registered with :func:`message`.

Decoding trusts nothing: every declared length is checked against the bytes that actually remain
before anything is allocated, nesting depth is bounded, dtypes come from an allow-list, and a
message's fields must match its registered dataclass exactly (names and types). Every failure is a
:class:`MalformedMessageError`, whatever the bytes (no ``ValueError`` from numpy, no ``TypeError``
from a dataclass's ``__post_init__``).

Bounded memory. Each message type has a size bound known before decoding (:func:`max_bytes`:
``message(name, max_bytes=...)``, or 64 KiB for a message of scalar fields only, or the channel's
limit), and a receiver that expects a type checks the payload's type name and size against it
(:func:`check_expected`) before decoding anything. Decoding itself charges every object it creates
(its ``sys.getsizeof``; array data stays a view of the received buffer and costs nothing more) and
refuses a payload whose objects would exceed ``DECODED_BYTES_PER_BYTE`` (8) times its length plus
``DECODE_SLACK_BYTES`` (64 KiB): so the Python objects of any decoded value, even 16 MiB of 0-d
arrays or empty lists, take at most 8 bytes per byte received (and one object more), instead of the
~30 such shapes cost unchecked. Honest messages stay far below (arrays, ciphertext bytes: ~1).

Encoding returns a list of buffers (headers plus zero-copy views of array data) so a transport can
stream a 300 MB array without first joining it into one more 300 MB copy.
"""

from __future__ import annotations

import dataclasses
import re
import struct
import sys
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

import numpy as np

from misuan.errors import MalformedMessageError, UnexpectedMessageError

MAX_DEPTH = 32
DECODED_BYTES_PER_BYTE = 8  # decoded Python objects may take at most this many bytes per byte received
DECODE_SLACK_BYTES = 64 << 10  # ... plus this, so small control messages of short strings always fit
SCALAR_MESSAGE_BYTES = 64 << 10  # the size bound of a message whose fields are all scalars or strings
_MAX_DIM = 2**62  # numpy's shapes are signed 64-bit; a larger dimension is malformed whatever the count

_DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<u1"),
    2: np.dtype("<i1"),
    3: np.dtype("<u2"),
    4: np.dtype("<i2"),
    5: np.dtype("<u4"),
    6: np.dtype("<i4"),
    7: np.dtype("<u8"),
    8: np.dtype("<i8"),
    9: np.dtype("<f4"),
    10: np.dtype("<f8"),
    11: np.dtype("?"),
}
_DTYPE_CODES = {dt: code for code, dt in _DTYPES.items()}
_FIXED_BYTES = 12  # numpy "S<n>": fixed-width byte strings, e.g. ciphertexts or curve points

_U8 = struct.Struct("<B")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_I64 = struct.Struct("<q")
_F64 = struct.Struct("<d")

_REGISTRY: dict[str, type] = {}
_MAX_BYTES: dict[str, int | None] = {}  # declared bounds; absent: derived from the fields on first use
_WIRE_NAME = re.compile(r"[a-z][a-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+")
_T = TypeVar("_T")


def message(name: str, max_bytes: int | None = None) -> Callable[[type[_T]], type[_T]]:
    """Register a dataclass as a wire message under the stable ``name`` (``"woe.BinSums"``).

    The name is part of the protocol, not of the code's layout: moving or renaming the class keeps
    it, so peers on another file layout still understand each other. Names are ``protocol.Message``.
    ``max_bytes`` bounds its encoded size; without it the bound is derived (:func:`max_bytes`).
    """
    if not isinstance(name, str) or not _WIRE_NAME.fullmatch(name):
        raise TypeError(f"wire message names look like 'protocol.Message', not {name!r}")
    if max_bytes is not None and (not isinstance(max_bytes, int) or max_bytes < 16):
        raise TypeError(f"max_bytes of {name} must be an int of at least 16, not {max_bytes!r}")
    if max_bytes is not None:
        _MAX_BYTES[name] = max_bytes

    def register(cls: type[_T]) -> type[_T]:
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"{cls.__name__} must be a dataclass to be a wire message")
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise TypeError(f"wire message name {name!r} is already taken by {_REGISTRY[name].__qualname__}")
        _REGISTRY[name] = cls
        cls.__wire_name__ = name  # type: ignore[attr-defined]
        return cls

    return register


def registered_messages() -> dict[str, type]:
    """Every registered message by wire name (for tests and documentation)."""
    return dict(_REGISTRY)


_SCALARS = (int, float, str, bool, type(None))


def _is_scalar(hint: Any) -> bool:
    if get_origin(hint) in (Union, types.UnionType):
        return all(_is_scalar(h) for h in get_args(hint))
    return hint in _SCALARS or get_origin(hint) is typing.Literal


def max_bytes(name: str) -> int | None:
    """The size bound of message type ``name``: declared, else 64 KiB if every field is a scalar or
    a string, else ``None`` (bounded by the channel's ``max_message_bytes`` only)."""
    if name not in _MAX_BYTES:
        cls = _REGISTRY[name]
        scalar = all(_is_scalar(h) for h in _hints(cls).values())
        _MAX_BYTES[name] = SCALAR_MESSAGE_BYTES if scalar else None
    return _MAX_BYTES[name]


def decode_budget(nbytes: int) -> int:
    """How many bytes of Python objects decoding a payload of ``nbytes`` may create."""
    return DECODED_BYTES_PER_BYTE * nbytes + DECODE_SLACK_BYTES


def message_name(buf: bytes | bytearray | memoryview) -> str | None:
    """The type name a payload declares in its first bytes, or ``None`` if it is not a message.

    Reads at most a few hundred bytes and allocates nothing else: a receiver learns what it got
    before decoding it. Raises :class:`MalformedMessageError` on a truncated or oversized name.
    """
    mv = memoryview(buf).cast("B")
    if mv.nbytes < 1 or mv[0] != ord("m"):
        return None
    if mv.nbytes < 5:
        raise MalformedMessageError("message truncated in its type name")
    (n,) = _U32.unpack(mv[1:5])
    if n > 256 or 5 + n > mv.nbytes:
        raise MalformedMessageError(f"message type name of {n} bytes is over the limit or truncated")
    try:
        return bytes(mv[5 : 5 + n]).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedMessageError("message type name is not valid UTF-8") from exc


def check_expected(buf: bytes | bytearray | memoryview, expect: type | None, sender: str, step: str) -> None:
    """Before decoding: the payload is of type ``expect`` (if given) and within its type's size bound.

    Raises :class:`UnexpectedMessageError` for another type, :class:`MalformedMessageError` for a
    payload over its type's bound, each naming the sender, step, types and sizes.
    """
    name = message_name(buf)
    size = memoryview(buf).nbytes
    want = getattr(expect, "__wire_name__", None) if expect is not None else None
    if want is not None and name != want:
        got = f"a {name}" if name is not None else "a value that is not a message"
        raise UnexpectedMessageError(
            f"step {step!r}: expected {getattr(expect, '__name__', want)} ({want}) from {sender}, got {got} ({size} bytes)"
        )
    if name is None or name not in _REGISTRY:
        return  # decode() refuses an unknown type; a bare value is bounded by the channel's limit
    bound = max_bytes(name)
    if bound is not None and size > bound:
        raise MalformedMessageError(
            f"step {step!r}: {sender} sent a {name} of {size} bytes; that type is at most {bound} bytes"
        )


# --- encoding ------------------------------------------------------------------------------------
def encode_parts(value: Any) -> list[bytes | memoryview]:
    """Encode ``value`` as a list of buffers whose concatenation is the message."""
    parts: list[bytes | memoryview] = []
    _encode(value, parts, 0)
    return parts


def encode(value: Any) -> bytes:
    return b"".join(encode_parts(value))


def encoded_size(parts: Iterable[bytes | memoryview]) -> int:
    return sum(memoryview(p).nbytes for p in parts)


def _str_bytes(s: str) -> bytes:
    raw = s.encode("utf-8")
    return _U32.pack(len(raw)) + raw


def _encode(v: Any, out: list[bytes | memoryview], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ValueError("value nested too deeply to encode")
    if v is None:
        out.append(b"N")
    elif v is True or v is False or isinstance(v, np.bool_):
        out.append(b"T" if v else b"F")
    elif isinstance(v, (int, np.integer)):
        iv = int(v)
        if -(2**63) <= iv < 2**63:
            out.append(b"i" + _I64.pack(iv))
        else:
            mag = abs(iv).to_bytes((abs(iv).bit_length() + 7) // 8, "little")
            out.append(b"I" + _U8.pack(1 if iv < 0 else 0) + _U64.pack(len(mag)) + mag)
    elif isinstance(v, (float, np.floating)):
        out.append(b"f" + _F64.pack(float(v)))
    elif isinstance(v, str):
        out.append(b"s" + _str_bytes(v))
    elif isinstance(v, (bytes, bytearray, memoryview)):
        mv = memoryview(v).cast("B")
        out.append(b"b" + _U64.pack(mv.nbytes))
        out.append(mv)
    elif isinstance(v, np.ndarray):
        _encode_array(v, out)
    elif dataclasses.is_dataclass(v) and not isinstance(v, type):
        name = getattr(type(v), "__wire_name__", None)
        if name is None:
            raise TypeError(f"{type(v).__name__} is not a registered wire message (use @wire.message)")
        fields = dataclasses.fields(v)
        out.append(b"m" + _str_bytes(name) + _U32.pack(len(fields)))
        for f in fields:
            out.append(_str_bytes(f.name))
            _encode(getattr(v, f.name), out, depth + 1)
    elif isinstance(v, (list, tuple)):
        out.append(b"l" + _U64.pack(len(v)))
        for item in v:
            _encode(item, out, depth + 1)
    elif isinstance(v, dict):
        out.append(b"d" + _U64.pack(len(v)))
        for k, item in v.items():
            if not isinstance(k, str):
                raise TypeError("wire dict keys must be str")
            out.append(_str_bytes(k))
            _encode(item, out, depth + 1)
    else:
        raise TypeError(f"cannot encode {type(v).__name__} on the wire")


def _encode_array(a: np.ndarray, out: list[bytes | memoryview]) -> None:
    if a.ndim > 8:
        raise ValueError("arrays of more than 8 dimensions are not sent")
    if a.dtype.kind == "S":
        code, itemsize = _FIXED_BYTES, a.dtype.itemsize
    else:
        dt = a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype
        key = np.dtype(dt.str.replace("=", "<").replace("|", "<") if dt.kind != "b" else "?")
        if key not in _DTYPE_CODES:
            raise TypeError(f"dtype {a.dtype} is not allowed on the wire")
        code, itemsize = _DTYPE_CODES[key], key.itemsize
        a = a.astype(key, copy=False)
    a = np.ascontiguousarray(a)
    header = b"a" + _U8.pack(code) + _U32.pack(itemsize) + _U8.pack(a.ndim)
    header += b"".join(_U64.pack(d) for d in a.shape)
    out.append(header)
    if a.nbytes:
        out.append(memoryview(a.reshape(-1).view(np.uint8).data))


# --- decoding ------------------------------------------------------------------------------------
class _Reader:
    __slots__ = ("budget", "buf", "pos")

    def __init__(self, buf: memoryview) -> None:
        self.buf = buf
        self.pos = 0
        self.budget = decode_budget(buf.nbytes)

    def charge(self, obj: Any, extra: int = 0) -> Any:
        """Count ``obj``'s memory against the decode budget; refuse once it is spent."""
        self.budget -= sys.getsizeof(obj) + extra
        if self.budget < 0:
            raise MalformedMessageError(
                f"message of {self.buf.nbytes} bytes decodes to more than {DECODED_BYTES_PER_BYTE} bytes of "
                "objects per byte: refused (a flood of tiny values)"
            )
        return obj

    def take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > self.buf.nbytes:
            raise MalformedMessageError(
                f"message truncated: needs {n} bytes at offset {self.pos}, has {self.buf.nbytes - self.pos}"
            )
        mv = self.buf[self.pos : self.pos + n]
        self.pos += n
        return mv

    def u8(self) -> int:
        return int(self.take(1)[0])

    def u32(self) -> int:
        return int(_U32.unpack(self.take(4))[0])

    def u64(self) -> int:
        return int(_U64.unpack(self.take(8))[0])

    def text(self) -> str:
        n = self.u32()
        try:
            return bytes(self.take(n)).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedMessageError("string field is not valid UTF-8") from exc


def decode(buf: bytes | bytearray | memoryview) -> Any:
    """Decode one value; arrays are zero-copy views (writable if ``buf`` is a bytearray).

    Any failure, whatever the bytes, is a :class:`MalformedMessageError`; the objects created are
    bounded by :func:`decode_budget` of the payload's length.
    """
    try:
        r = _Reader(memoryview(buf).cast("B"))
        value = _decode(r, 0)
    except MalformedMessageError:
        raise
    except Exception as exc:  # a last guard: numpy or Python refused a value the checks above let through
        raise MalformedMessageError(f"message does not decode: {type(exc).__name__}: {exc}") from exc
    if r.pos != r.buf.nbytes:
        raise MalformedMessageError(f"{r.buf.nbytes - r.pos} trailing bytes after the message")
    return value


_SINGLETONS = {b"N": None, b"T": True, b"F": False}
_POINTER = 8  # a reference to a decoded value in its list, dict or message


def _decode(r: _Reader, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise MalformedMessageError("message nested too deeply")
    tag = bytes(r.take(1))
    if tag in _SINGLETONS:
        r.charge((), _POINTER - sys.getsizeof(()))  # shared objects: only the reference costs
        return _SINGLETONS[tag]
    if tag == b"i":
        return r.charge(int(_I64.unpack(r.take(8))[0]), _POINTER)
    if tag == b"I":
        neg = r.u8()
        n = r.u64()
        mag = int.from_bytes(r.take(n), "little")
        return r.charge(-mag if neg else mag, _POINTER)
    if tag == b"f":
        return r.charge(float(_F64.unpack(r.take(8))[0]), _POINTER)
    if tag == b"s":
        return r.charge(r.text(), _POINTER)
    if tag == b"b":
        return r.charge(bytes(r.take(r.u64())), _POINTER)
    if tag == b"a":
        arr = _decode_array(r)
        return r.charge(arr, _POINTER + 2 * 8 * arr.ndim)  # numpy keeps shape and strides apart
    if tag == b"l":
        n = r.u64()
        if n > r.buf.nbytes - r.pos:  # every item takes at least one byte
            raise MalformedMessageError(f"list claims {n} items, more than the bytes left")
        r.charge([], 0)  # each item charges its own reference
        return [_decode(r, depth + 1) for _ in range(n)]
    if tag == b"d":
        return _decode_dict(r, depth)
    if tag == b"m":
        msg = _decode_message(r, depth)
        return r.charge(msg, _POINTER + (sys.getsizeof(msg.__dict__) if hasattr(msg, "__dict__") else 0))
    raise MalformedMessageError(f"unknown type tag {tag!r}")


def _decode_dict(r: _Reader, depth: int) -> dict[str, Any]:
    n = r.u64()
    if n > r.buf.nbytes - r.pos:
        raise MalformedMessageError(f"dict claims {n} items, more than the bytes left")
    out: dict[str, Any] = r.charge({}, _POINTER)
    for _ in range(n):
        k = r.charge(r.text(), 3 * _POINTER)  # a dict entry: hash, key and value references
        out[k] = _decode(r, depth + 1)
    return out


def _decode_array(r: _Reader) -> np.ndarray:
    code = r.u8()
    itemsize = r.u32()
    ndim = r.u8()
    if ndim > 8:
        raise MalformedMessageError("array has more than 8 dimensions")
    shape = tuple(r.u64() for _ in range(ndim))
    if any(d > _MAX_DIM for d in shape):
        raise MalformedMessageError(f"array shape {shape} has a dimension beyond numpy's limit")
    if code == _FIXED_BYTES:
        if not 1 <= itemsize <= 1 << 20:
            raise MalformedMessageError(f"fixed-width byte items of {itemsize} bytes are not allowed")
        dtype = np.dtype(f"S{itemsize}")
    elif code in _DTYPES:
        dtype = _DTYPES[code]
        if itemsize != dtype.itemsize:
            raise MalformedMessageError("array item size does not match its dtype")
    else:
        raise MalformedMessageError(f"array dtype code {code} is not allowed")
    count = 1
    for d in shape:
        count *= d
    nbytes = count * dtype.itemsize
    if nbytes > r.buf.nbytes - r.pos:
        raise MalformedMessageError(f"array claims {nbytes} bytes, more than the bytes left")
    offset = r.pos
    r.take(nbytes)
    try:
        # one array object on the received buffer (no intermediate view or memoryview per array)
        return np.ndarray(shape, dtype=dtype, buffer=r.buf, offset=offset)
    except ValueError as exc:  # e.g. shape (0, 2**62, 4): no bytes, but more elements than numpy indexes
        raise MalformedMessageError(f"array of shape {shape} cannot be built: {exc}") from exc


def _decode_message(r: _Reader, depth: int) -> Any:
    name = r.text()
    cls = _REGISTRY.get(name)
    if cls is None:
        raise MalformedMessageError(f"unknown message type {name!r}")
    n = r.u32()
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if n != len(fields):
        raise MalformedMessageError(f"{name} has {len(fields)} fields, the message carries {n}")
    hints = _hints(cls)
    values: dict[str, Any] = {}
    for _ in range(n):
        key = r.text()
        if key not in fields or key in values:
            raise MalformedMessageError(f"{name} has no field {key!r} (or it is repeated)")
        val = _decode(r, depth + 1)
        if not _conforms(val, hints[key]):
            raise MalformedMessageError(f"{name}.{key} has type {type(val).__name__}, expected {hints[key]}")
        values[key] = val
    try:
        return cls(**values)
    except MalformedMessageError:
        raise
    except Exception as exc:  # the message's own checks (__post_init__) refused the values
        raise MalformedMessageError(f"{name} refused its fields: {type(exc).__name__}: {exc}") from exc


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = get_type_hints(cls)
    return _HINTS[cls]


def _conforms(val: Any, hint: Any) -> bool:
    """Shallow type check of a decoded value against a field annotation."""
    if hint is Any:
        return True
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        return any(_conforms(val, h) for h in get_args(hint))
    if hint is type(None):
        return val is None
    if hint is float:
        return isinstance(val, float) or (isinstance(val, int) and not isinstance(val, bool))
    if hint is int:
        return isinstance(val, int) and not isinstance(val, bool)
    if hint in (str, bytes, bool):
        return isinstance(val, hint)
    if hint is np.ndarray:
        return isinstance(val, np.ndarray)
    if origin in (list, tuple):
        if not isinstance(val, list):
            return False
        args = get_args(hint)
        inner = args[0] if args else Any
        return all(_conforms(v, inner) for v in val)
    if origin is dict:
        if not isinstance(val, dict):
            return False
        args = get_args(hint)
        inner = args[1] if len(args) == 2 else Any
        return all(_conforms(v, inner) for v in val.values())
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return isinstance(val, hint)
    if origin is typing.Literal:
        return val in get_args(hint)
    return True
