"""Atomic file writes: a reader, or a crash at any moment, never sees a half-written file.

The content goes to a temporary file in the target's directory, is flushed to disk, and is renamed
over the target (``os.replace`` is atomic on POSIX and Windows); on any error the temporary file is
removed and the target is left as it was. Like :mod:`misuan.errors`, every layer may use this.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Literal


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike[str],
    mode: Literal["w", "wb"] = "w",
    *,
    private: bool = False,
    encoding: str = "utf-8",
    newline: str | None = None,
) -> Iterator[IO[Any]]:
    """Open ``path`` for writing so that it appears complete or not at all.

    ``private`` files (keys) are readable by the owner only; others get the usual umask mode.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        if private:
            os.chmod(tmp, 0o600)
        else:  # mkstemp makes the file 0600; an output meant to be read gets the umask's mode
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        f: IO[Any] = os.fdopen(fd, "wb") if mode == "wb" else os.fdopen(fd, "w", encoding=encoding, newline=newline)
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: str | os.PathLike[str], data: str | bytes, *, private: bool = False) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` atomically; returns the path."""
    if isinstance(data, bytes):
        with atomic_open(path, "wb", private=private) as f:
            f.write(data)
    else:
        with atomic_open(path, "w", private=private) as f:
            f.write(data)
    return Path(path)
