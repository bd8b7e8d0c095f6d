#!/usr/bin/env python3
"""Two commands from a fresh clone, on any OS with Python 3.10+ (standard library only):

    python3 quickstart.py demo     # install into ./.venv, then run `misuan demo`
    python3 quickstart.py test     # install into ./.venv, then ruff, mypy and the test suite

Any further arguments go to the command (e.g. ``python3 quickstart.py test -k psi``). The virtual
environment is reinstalled only when pyproject.toml or constraints/test.txt changes;
``MISUAN_VENV=.venv-3.13 python3.13 quickstart.py test`` keeps a separate one per Python.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
# MISUAN_VENV lets CI keep one environment per Python (.venv-3.10, .venv-3.13) side by side
VENV = ROOT / os.environ.get("MISUAN_VENV", ".venv")
STAMP = VENV / ".misuan-installed"
# versions of the test tools (ruff, mypy, pytest, the XGBoost baseline): the same on every Python
CONSTRAINTS = ROOT / "constraints" / "test.txt"


def _python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _run(*args: str | Path) -> int:
    return subprocess.call([str(a) for a in args], cwd=ROOT)


def ensure_env() -> None:
    if sys.version_info < (3, 10):
        sys.exit(f"misuan needs Python 3.10 or newer; this is {sys.version.split()[0]}")
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + CONSTRAINTS.read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == want and _python().exists():
        return
    if not _python().exists():
        print("quickstart: creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("quickstart: installing misuan and its test tools into .venv ...", flush=True)
    pip = [_python(), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    if _run(*pip, "--upgrade", "pip") != 0 or _run(*pip, "-e", ".[dev]", "-c", CONSTRAINTS) != 0:
        sys.exit("quickstart: installation failed (see pip's message above)")
    STAMP.write_text(want)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"demo", "test"}:
        print(__doc__)
        return 2
    ensure_env()
    cmd, rest = argv[0], argv[1:]
    py = _python()
    if cmd == "demo":
        return _run(py, "-m", "misuan.cli", "demo", *rest)
    for step in ([py, "-m", "ruff", "check", "misuan", "tests", "bench"], [py, "-m", "mypy", "misuan"]):
        print("quickstart:", " ".join(str(s) for s in step[1:]), flush=True)
        if _run(*step) != 0:
            return 1
    return _run(py, "-m", "pytest", *rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
