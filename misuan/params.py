"""Typed parameters, declared once.

A protocol (or a step, or an estimator) declares its parameters as one frozen dataclass whose fields
are made with :func:`param`: the annotation is the type, ``param`` gives the default, the range or
choices and one line of documentation. Everything else derives from that declaration:

- :func:`check_params` (called from the dataclass's ``__post_init__``) refuses a wrong type or a
  value out of range, whoever built the object (an estimator, a notebook, a job spec);
- :func:`parse_params` reads a job spec's ``params`` table into one or more such dataclasses,
  refusing unknown keys and naming the field path once (``step[2] 'woe'.params.n_bins: ...``);
- :func:`param_docs` gives the table that ``misuan params`` prints and ``docs/params.md`` holds,
  and the keyword signature estimators expose.

Types are checked strictly, as a TOML file or a Python call gives them: an ``int`` field takes
neither ``10.5`` nor ``10.0`` nor ``"10"`` nor ``true``; a ``float`` field takes an integer (and
stores it as a float) but not a boolean or a string. ``X | None`` also takes ``None`` (TOML has no
null, so from a spec it means "leave the key out"). ``Literal[...]`` fields take one of the listed
strings; ``Mapping[str, T]`` fields take a table whose values are each checked as ``T`` (stored as a
copy); ``tuple[T, ...]`` fields take a list whose items are each checked as ``T`` (stored as a tuple,
so the dataclass stays hashable and a float field's integers become floats). A field
typed as another parameters dataclass is a nested table of its fields (PSI's ``normalize = { case =
"casefold" }``); its errors name the path (``normalize.case``).

Modelled on scikit-learn's ``_parameter_constraints`` (type and range in one declaration) with
dataclasses in place of a dict, so mypy sees the fields too.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from misuan.errors import ConfigError

__all__ = ["ParamDoc", "ParamError", "check_params", "param", "param_docs", "parse_params", "markdown_table"]

_T = TypeVar("_T")
_META = "misuan.param"
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


class ParamError(ConfigError):
    """A parameter has the wrong type or is out of range; ``field`` names it, ``problem`` says why."""

    def __init__(self, field: str, problem: str, owner: str = "") -> None:
        self.field = field
        self.problem = problem
        self.owner = owner
        super().__init__(f"{owner + ' parameter ' if owner else ''}{field}: {problem}")


@dataclasses.dataclass(frozen=True)
class _Bounds:
    doc: str
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def contains(self, v: float) -> bool:
        return not (
            (self.ge is not None and v < self.ge)
            or (self.gt is not None and v <= self.gt)
            or (self.le is not None and v > self.le)
            or (self.lt is not None and v >= self.lt)
        )

    def text(self) -> str:
        if self.ge is not None and self.le is not None:
            return f"from {_num(self.ge)} to {_num(self.le)}"
        lo = f">= {_num(self.ge)}" if self.ge is not None else f"> {_num(self.gt)}" if self.gt is not None else ""
        hi = f"<= {_num(self.le)}" if self.le is not None else f"< {_num(self.lt)}" if self.lt is not None else ""
        return " and ".join(s for s in (lo, hi) if s)


def _num(v: float | None) -> str:
    return str(int(v)) if v is not None and float(v).is_integer() and abs(v) < 1e15 else str(v)


def param(
    default: Any,
    doc: str,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
) -> Any:
    """A dataclass field declared as a parameter: its default, its range and one line of doc.

    A mutable default (a dict) is copied per instance. The type comes from the field's annotation.
    """
    meta = {_META: _Bounds(doc, ge, gt, le, lt)}
    if isinstance(default, (dict, list)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


# --- types -----------------------------------------------------------------------------------------
def _hints(cls: type) -> dict[str, Any]:
    cached = cls.__dict__.get("__param_hints__")
    if cached is None:
        cached = get_type_hints(cls)
        cls.__param_hints__ = cached  # type: ignore[attr-defined]
    return cached


def _is_union(tp: Any) -> bool:
    return get_origin(tp) is Union or isinstance(tp, types.UnionType)


def _type_text(tp: Any) -> str:
    if _is_union(tp):
        return " or ".join(_type_text(a) for a in get_args(tp))
    if tp is type(None):
        return "none"
    origin = get_origin(tp)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (Mapping, dict) or (origin is not None and getattr(origin, "__name__", "") == "Mapping"):
        return f"a table of {_type_text(get_args(tp)[1])}"
    if origin in (tuple, Sequence, list):
        return f"a list of {_type_text(get_args(tp)[0])}"
    return {bool: "true/false", int: "integer", float: "number", str: "text"}.get(tp, getattr(tp, "__name__", str(tp)))


class _Refused(Exception):
    pass


def _convert(tp: Any, value: Any, bounds: _Bounds | None) -> Any:
    """``value`` as type ``tp`` (an int becomes a float for a float field), or raise _Refused."""
    if _is_union(tp):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(a, value, bounds)
            except _Refused:
                continue
        raise _Refused
    origin = get_origin(tp)
    if origin is typing.Literal:
        if isinstance(value, str) and value in get_args(tp):
            return value
        raise _Refused
    if origin is not None and getattr(origin, "__name__", "") in ("Mapping", "dict"):
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise _Refused
        return {k: _convert(get_args(tp)[1], v, None) for k, v in value.items()}
    if origin is not None and getattr(origin, "__name__", "") in ("tuple", "Sequence", "list"):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise _Refused
        return tuple(_convert(get_args(tp)[0], v, None) for v in value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Refused
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Refused
        return _checked(int(value), bounds)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise _Refused
        return _checked(float(value), bounds)
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Refused
    raise TypeError(f"parameter type {tp!r} is not supported by misuan.params")


def _checked(v: int | float, bounds: _Bounds | None) -> int | float:
    if bounds is not None and not bounds.contains(v):
        raise _Refused
    return v


def _expected(tp: Any, bounds: _Bounds) -> str:
    rng = bounds.text()
    base = {int: "an integer", float: "a number", bool: "true or false", str: "text"}
    inner = [a for a in get_args(tp) if a is not type(None)] if _is_union(tp) else [tp]
    words = " or ".join(base.get(a, _type_text(a)) for a in inner) + (" " + rng if rng else "")
    if _is_union(tp) and type(None) in get_args(tp):
        words += " (or leave it out)"
    return f"must be {words}"


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


# --- checking and parsing --------------------------------------------------------------------------
def _param_fields(cls: type) -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(cls) if _META in f.metadata]


def check_params(obj: Any, owner: str = "") -> None:
    """Refuse any declared field of ``obj`` whose value has the wrong type or is out of range.

    Call it first thing in ``__post_init__``; it also turns integers given to float fields into floats.
    """
    hints = _hints(type(obj))
    for f in _param_fields(type(obj)):
        value = getattr(obj, f.name)
        bounds: _Bounds = f.metadata[_META]
        if _is_params_class(hints[f.name]):
            object.__setattr__(obj, f.name, _nested(hints[f.name], value, f.name, owner))
            continue
        try:
            converted = _convert(hints[f.name], value, bounds)
        except _Refused:
            raise ParamError(f.name, f"{_expected(hints[f.name], bounds)}, not {_shown(value)}", owner) from None
        if converted is not value:  # a list becomes a tuple, a table a copy, an int a float where due
            object.__setattr__(obj, f.name, converted)


def _is_params_class(tp: Any) -> bool:
    """A field typed as another parameters dataclass: a nested table (``normalize = { case = "upper" }``)."""
    return isinstance(tp, type) and dataclasses.is_dataclass(tp) and bool(_param_fields(tp))


def _nested(cls: type, value: Any, name: str, owner: str) -> Any:
    """``value`` (an instance of ``cls`` or a table of its fields) as ``cls``; errors name ``name.field``."""
    if isinstance(value, cls):
        return value
    known = sorted(f.name for f in _param_fields(cls))
    if not isinstance(value, Mapping):
        raise ParamError(name, f"must be a table with keys among {', '.join(known)}, not {_shown(value)}", owner)
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise ParamError(name, f"unknown key(s) {unknown}; allowed keys are {known}", owner)
    try:
        return cls(**value)
    except ParamError as exc:
        raise ParamError(f"{name}.{exc.field}", exc.problem, owner) from None


def parse_params(
    classes: Sequence[type] | type,
    table: Mapping[str, Any],
    where: str,
    error: type[ConfigError] = ConfigError,
) -> Any:
    """Build each dataclass in ``classes`` from the keys of ``table`` it declares.

    Returns one instance for one class, or a tuple for a sequence. Unknown keys and every refused
    value raise ``error`` naming ``{where}.{key}`` once. A key declared by several classes goes to
    each of them (so a step's ``key_bits`` can feed two protocols).
    """
    many = isinstance(classes, Sequence)
    clss: list[type] = list(classes) if isinstance(classes, Sequence) else [classes]
    if not isinstance(table, Mapping):
        raise error(f"{where}: must be a table such as {{ key = value }}, not {_shown(table)}")
    known = {f.name for c in clss for f in _param_fields(c)}
    unknown = sorted(set(table) - known)
    if unknown and not known:
        raise error(f"{where}: unknown key(s) {unknown}; this takes no parameters")
    if unknown:
        raise error(f"{where}: unknown key(s) {unknown}; allowed keys are {sorted(known)}")
    out = []
    for c in clss:
        kw = {f.name: table[f.name] for f in _param_fields(c) if f.name in table}
        try:
            out.append(c(**kw))
        except ParamError as exc:
            raise error(f"{where}.{exc.field}: {exc.problem}") from None
    return tuple(out) if many else out[0]


# --- documentation ---------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ParamDoc:
    name: str
    type: str
    default: Any
    range: str
    doc: str

    @property
    def default_text(self) -> str:
        """The default as a job spec writes it (TOML), or ``(none)``."""
        return "(none)" if self.default is None else _toml(self.default)


def _toml(value: Any) -> str:
    """``value`` as a TOML value: ``true``, ``"ou"``, ``[0.05, 0.5]``, ``{ income = "tree" }``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a TOML basic string has JSON's escapes
    if isinstance(value, Mapping):
        items = ", ".join(f"{_toml_key(str(k))} = {_toml(v)}" for k, v in value.items())
        return f"{{ {items} }}" if items else "{}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value)


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key, ensure_ascii=False)


def param_docs(classes: Iterable[type]) -> list[ParamDoc]:
    """One row per declared parameter of ``classes`` (the first declaration of a repeated name).

    A nested table of parameters gives one row per field, named ``table.field``.
    """
    rows: list[ParamDoc] = []
    seen: set[str] = set()
    for cls in classes:
        for row in _class_docs(cls, ""):
            if row.name not in seen:
                seen.add(row.name)
                rows.append(row)
    return rows


def _class_docs(cls: type, prefix: str) -> list[ParamDoc]:
    hints = _hints(cls)
    rows: list[ParamDoc] = []
    for f in _param_fields(cls):
        if _is_params_class(hints[f.name]):
            rows += _class_docs(hints[f.name], f"{prefix}{f.name}.")
            continue
        bounds: _Bounds = f.metadata[_META]
        factory = f.default_factory
        default = f.default if f.default is not dataclasses.MISSING else factory() if callable(factory) else None
        rows.append(ParamDoc(prefix + f.name, _type_text(hints[f.name]), default, bounds.text(), bounds.doc))
    return rows


def markdown_table(classes: Iterable[type]) -> str:
    lines = ["| param | type | default | range | meaning |", "|---|---|---|---|---|"]
    for r in param_docs(classes):
        lines.append(f"| `{r.name}` | {r.type} | `{r.default_text}` | {r.range} | {r.doc} |")
    return "\n".join(lines) + "\n"
