"""Reading TOML files (job specs, node configs, lending rule sets, product terms): one error mapping.

Every failure is one line of the caller's error class naming the file and what is wrong with it
(missing, a directory, not UTF-8, not valid TOML with the parser's line and column), so each reader
of a TOML file says the same thing the same way. ``tomllib`` on Python 3.11+, ``tomli`` on 3.10.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from misuan.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = ["parse_toml", "read_toml"]


def read_toml(path: str | os.PathLike[str], what: str = "", error: type[ConfigError] = ConfigError) -> dict[str, Any]:
    """The TOML document in ``path``; ``what`` names the file in errors (``"rules file"``)."""
    p = Path(path)
    name = f"{what} {p}" if what else str(p)
    try:
        text = p.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise error(f"{name} does not exist") from None
    except IsADirectoryError:
        raise error(f"{name} is a directory, not a TOML file") from None
    except UnicodeDecodeError:
        raise error(f"{name} is not UTF-8 text") from None
    except OSError as exc:
        raise error(f"cannot read {name}: {exc.strerror or exc}") from None
    return parse_toml(text, name, error)


def parse_toml(text: str, name: str, error: type[ConfigError] = ConfigError) -> dict[str, Any]:
    """``text`` parsed as TOML; ``name`` says where it came from in the error."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{name} is not valid TOML: {exc}") from None
