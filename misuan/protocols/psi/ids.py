"""Customer IDs before PSI: type policy and the normalisation both parties must apply identically.

Two parties only find a shared customer when they hash byte-identical strings, so every ID is first
brought to a canonical form by an :class:`IdNormalization` that both sides agree on (PSI exchanges
its canonical description first and refuses to run on a mismatch). Its fields are parameters
(:mod:`misuan.params`): a job spec writes them as the PSI step's nested table ``normalize``.

Type policy (:func:`coerce_ids`): IDs are strings. A column of integers only (Python or numpy ints,
not bools) is accepted and written in decimal; anything else mixed in (floats, bytes, a few ints
among strings) is refused with a :class:`~misuan.errors.DataError` naming example rows, because
``1.0`` versus ``"1"`` silently breaks matching; load the column as text (``dtype=str``).
Missing values (``None``, ``NaN``) and IDs that normalise to ``""`` raise
:class:`~misuan.errors.EmptyIdError`; repeated IDs raise :class:`~misuan.errors.DuplicateIdError`
(from the PSI step, which detects them after hashing): deduplicate before PSI.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import unicodedata
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from misuan.errors import DataError, EmptyIdError
from misuan.params import ParamError, check_params, param

__all__ = ["IdNormalization", "coerce_ids", "example_rows", "normalize_ids"]

_MAX_EXAMPLES = 5
_NON_DIGITS = re.compile(r"[\s\-().·/]")
_CN_ID = re.compile(r"[0-9]{17}[0-9X]")
_CN_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CN_ID_CHECK = "10X98765432"


@dataclasses.dataclass(frozen=True)
class IdNormalization:
    """How an ID string becomes the bytes that are hashed; both parties must use the same one.

    Steps, in order: Unicode normalisation (``unicode``), trimming of surrounding whitespace
    (``strip``), the ``kind``-specific canonical form, then case (``case``; ``casefold`` is
    Unicode-aware lower-casing). Kinds:

    - ``text``: nothing more.
    - ``phone``: spaces, dashes, dots, slashes and brackets are dropped; a leading ``+`` or ``00``
      marks an international number, otherwise one leading trunk ``0`` is dropped and
      ``country_code`` is prepended; the result is ``+<digits>``. A value with anything else in it
      (letters) is refused. ``"138 0013 8000"`` and ``"+86 138-0013-8000"`` both become
      ``"+8613800138000"``. A national number written with its country code but no ``+``
      (``"8613800138000"``) is read as national: write international numbers with ``+`` or ``00``.
    - ``cn_id``: an 18-character PRC resident identity number; spaces dropped, ``x`` upper-cased,
      the ISO 7064 MOD 11-2 check character verified. 15-digit legacy numbers are refused.
    """

    strip: bool = param(True, "trim surrounding whitespace")
    case: Literal["keep", "casefold", "upper"] = param(
        "keep", "letter case: keep it, casefold (Unicode-aware lower case) or upper"
    )
    unicode: Literal["NFC", "NFKC", "none"] = param("NFKC", "Unicode normal form applied first")
    kind: Literal["text", "phone", "cn_id"] = param(
        "text", "what the IDs are: free text, phone numbers or PRC resident identity numbers"
    )
    country_code: str = param("86", "prepended to national phone numbers (kind = phone): 1-3 digits")

    def __post_init__(self) -> None:
        check_params(self, "IdNormalization")
        if not self.country_code.isdigit() or not 1 <= len(self.country_code) <= 3:
            raise ParamError("country_code", f"must be 1-3 digits, not {self.country_code!r}", "IdNormalization")

    def canonical(self) -> str:
        """A stable text description; equal descriptions mean equal normalisation."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True, separators=(",", ":"))

    def apply(self, value: str) -> str | None:
        """The canonical form of ``value``; ``None`` if it is not a valid ID of this kind."""
        if self.unicode != "none":
            value = unicodedata.normalize(self.unicode, value)
        if self.strip:
            value = value.strip()
        if self.kind == "phone":
            return self._phone(value)
        if self.kind == "cn_id":
            return _cn_id(value)
        if self.case == "casefold":
            return value.casefold()
        if self.case == "upper":
            return value.upper()
        return value

    def _phone(self, value: str) -> str | None:
        digits = _NON_DIGITS.sub("", value)
        if not digits:
            return ""
        if digits.startswith("+"):
            digits = digits[1:]
        elif digits.startswith("00"):
            digits = digits[2:]
        else:
            digits = self.country_code + (digits[1:] if digits.startswith("0") else digits)
        if not digits.isascii() or not digits.isdigit():
            return None
        return "+" + digits


def _cn_id(value: str) -> str | None:
    value = value.replace(" ", "").upper()
    if not value:
        return ""
    if not _CN_ID.fullmatch(value):
        return None
    total = sum(int(c) * w for c, w in zip(value[:17], _CN_ID_WEIGHTS, strict=True))
    return value if _CN_ID_CHECK[total % 11] == value[17] else None


def example_rows(rows: Sequence[int] | np.ndarray, ids: Sequence[Any] | None = None) -> str:
    """``"rows 3 ('a'), 17 ('b')"``: the first few offending rows for an error message."""
    shown = [int(r) for r in list(rows)[:_MAX_EXAMPLES]]
    if ids is None:
        text = ", ".join(str(r) for r in shown)
    else:
        text = ", ".join(f"{r} ({ids[r]!r})" for r in shown)
    more = f" and {len(rows) - len(shown)} more" if len(rows) > len(shown) else ""
    return f"row{'s' if len(rows) > 1 else ''} {text}{more}"


def coerce_ids(ids: Sequence[Any] | np.ndarray) -> list[str]:
    """The IDs as a list of ``str`` under the type policy of this module (no normalisation yet)."""
    if isinstance(ids, np.ndarray) and ids.dtype.kind in "iu":
        return [str(v) for v in ids.tolist()]
    values = ids.tolist() if hasattr(ids, "tolist") else list(ids)  # numpy arrays, pandas Series
    kinds = set(map(type, values))
    if kinds <= {str}:
        return values
    missing = [i for i, v in enumerate(values) if _is_missing(v)]
    if missing:
        raise EmptyIdError(f"missing IDs at {example_rows(missing)}: drop or fill them before PSI")
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in values):
        return [str(int(v)) for v in values]
    odd = [i for i, v in enumerate(values) if not isinstance(v, str)]
    kinds_text = ", ".join(sorted(t.__name__ for t in kinds))
    raise DataError(
        f"IDs must all be strings (or all integers); found {kinds_text}: non-string IDs at "
        f"{example_rows(odd, values)}. Load the ID column as text (e.g. pandas dtype=str)"
    )


def _is_missing(value: Any) -> bool:
    """None, a float NaN, or pandas' NA / NaT (recognised by type name: no pandas import needed)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return True
    return type(value).__name__ in ("NAType", "NaTType")


def normalized_ascii(ids: Sequence[str], normalization: IdNormalization) -> list[str] | None:
    """The normalised IDs as ASCII ``str``, by str methods alone, where that is exact: text IDs that
    are all ASCII, which NFC and NFKC leave as they are (casefold is lower() there), none empty once
    normalised. None otherwise: then :func:`normalize_ids` takes the general path (and names the
    rows of empty or invalid IDs). Their UTF-8 bytes are their ASCII bytes."""
    if normalization.kind != "text" or not "".join(ids).isascii():
        return None
    values = list(map(str.strip, ids)) if normalization.strip else list(ids)
    if normalization.case == "casefold":
        values = list(map(str.lower, values))
    elif normalization.case == "upper":
        values = list(map(str.upper, values))
    return values if all(values) else None


def normalize_ids(
    ids: Sequence[str], normalization: IdNormalization, rows: Sequence[int] | None = None
) -> list[bytes]:
    """UTF-8 bytes of each normalised ID; raises :class:`EmptyIdError` / :class:`DataError` naming rows.

    ``rows`` are the row numbers of ``ids`` in the user's data, for error messages (default 0, 1, ...).
    """
    row_of = rows if rows is not None else range(len(ids))
    fast = normalized_ascii(ids, normalization)
    if fast is not None:
        return list(map(str.encode, fast))
    apply = normalization.apply
    out: list[bytes] = []
    empty: list[int] = []
    invalid: list[int] = []
    for i, value in enumerate(ids):
        canonical = apply(value)
        if canonical is None:
            invalid.append(i)
        elif not canonical:
            empty.append(i)
        else:
            out.append(canonical.encode("utf-8"))
    if empty:
        raise EmptyIdError(
            f"empty IDs (after normalisation {normalization.canonical()}) at "
            f"{example_rows(sorted(row_of[i] for i in empty))}: drop them before PSI"
        )
    if invalid:
        bad = sorted(row_of[i] for i in invalid)
        raise DataError(
            f"IDs that are not valid {normalization.kind} values at "
            f"{example_rows(bad)} (e.g. {ids[invalid[0]]!r}): fix them or use kind='text'"
        )
    return out
