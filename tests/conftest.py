"""Tests marked ``own_process`` run in a fresh Python interpreter of their own.

Why: a one-machine Ray cluster started inside the test process stays tied to it through the driver's
C++ core worker, which can end its process with status 1 and no message (it does when it loses its
raylet). A CI run's pytest once stopped silently with status 1 and about half the suite run, near
the Ray tests: the likeliest cause, not a proven one. In a child interpreter such an exit fails that
one test with the child's output instead of ending the whole run.

The parent still sets up and tears down the test's fixtures (keep them cheap on marked tests: anything
heavy, such as starting Ray, belongs in the test body, which runs only in the child).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

CHILD = "MISUAN_TEST_IN_OWN_PROCESS"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "own_process: runs in a fresh Python interpreter of its own")


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if os.environ.get(CHILD) or pyfuncitem.get_closest_marker("own_process") is None:
        return None
    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", pyfuncitem.nodeid],
            cwd=pyfuncitem.config.rootpath, env={**os.environ, CHILD: "1"}, capture_output=True, text=True,
        )

    child = run()
    if child.returncode != 0 and not (child.stdout + child.stderr).strip():
        # the child ended without a word, not even pytest's summary: the Ray driver's silent exit
        # above (seen once in a CI run, the Ray job test, which passes on its own); run it once more
        child = run()
    output = child.stdout + child.stderr
    summary = output.strip().splitlines()[-1] if output.strip() else ""
    if child.returncode == 0 and " passed" in summary:
        return True
    if child.returncode == 0 and " skipped" in summary:
        reason = re.search(r"^SKIPPED \[\d+\] \S+:\d+: (.*)$", output, re.MULTILINE)
        pytest.skip(reason[1] if reason else summary)
    pytest.fail(f"in its own process: exit status {child.returncode}\n{output[-8000:]}", pytrace=False)
