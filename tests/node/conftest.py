from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.jobfiles import write_job


@pytest.fixture
def make_job(tmp_path: Path) -> Callable[..., Path]:
    """Write datasets and a spec into ``tmp_path``; returns the spec path."""
    return lambda *a, **kw: write_job(tmp_path, *a, **kw)
