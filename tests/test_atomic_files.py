from __future__ import annotations

import os
from pathlib import Path

import pytest

from misuan.atomic_files import atomic_open, write_atomic


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="killed"), atomic_open(path) as f:
        f.write("half of the new")
        raise RuntimeError("killed mid-write")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["model.json"]


def test_modes_private_and_public(tmp_path: Path) -> None:
    key = write_atomic(tmp_path / "sub" / "k.key", b"secret", private=True)
    assert key.read_bytes() == b"secret" and (key.stat().st_mode & 0o777) == 0o600
    old = os.umask(0o022)
    try:
        pub = write_atomic(tmp_path / "r.html", "ünïcode")
    finally:
        os.umask(old)
    assert pub.read_text(encoding="utf-8") == "ünïcode" and (pub.stat().st_mode & 0o777) == 0o644
