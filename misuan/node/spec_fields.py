"""Reading the fields of a job spec or node config: one place for the checks and their messages."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from misuan.errors import ConfigError, JobSpecError

__all__ = ["column_name", "file_path", "only_keys", "sub_table"]


def only_keys(table: Mapping[str, Any], where: str, allowed: set[str], err: type[ConfigError] = JobSpecError) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise err(f"{where}: unknown key(s) {unknown}; allowed keys are {sorted(allowed)}")


def sub_table(parent: Mapping[str, Any], key: str, where: str, required: bool) -> Mapping[str, Any]:
    value = parent.get(key)
    if value is None and required:
        raise JobSpecError(f"{where}: missing [{key}] table" if where.startswith("the") else f"{where}.{key}: missing")
    if not isinstance(value, Mapping):
        raise JobSpecError(f"{where}.{key}: must be a table, not {type(value).__name__}")
    return value


def column_name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise JobSpecError(f"{where}: give a column name as a non-empty string (got {value!r})")
    return value


def file_path(value: Any, where: str, base: Path, err: type[ConfigError]) -> Path:
    if not isinstance(value, str) or not value:
        raise err(f"{where}: give a file path as a string (got {value!r})")
    return (base / os.path.expanduser(value)).resolve()
