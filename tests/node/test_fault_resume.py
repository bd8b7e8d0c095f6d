"""Kill a party at a random moment of each credit step, resume, and get the same outputs and sound ledgers.

Both parties run as separate ``misuan run`` processes over gRPC + mutual TLS (:mod:`tests.fault_harness`).
For each step of psi -> woe -> secureboost -> evaluate, a randomly chosen party is SIGKILLed a
random moment after the step started; both parties then rerun with ``--resume``. The outputs must
equal an undisturbed run's (up to timings and PSI's per-run secret row order), and each party's
ledger must verify and agree with the anchors its peer holds of it. Seed: ``MISUAN_FAULT_SEED``
(printed on failure). About 30 s on 2 cores.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from tests.fault_harness import (
    CREDIT_STEPS,
    canonical_outputs,
    check_ledgers,
    kill_and_resume,
    make_pki,
    run_clean,
    step_seconds,
    write_credit_job,
)


@pytest.mark.slow
def test_kill_in_every_step_then_resume_gives_the_same_outputs_and_verified_ledgers(tmp_path: Path) -> None:
    seed = int(os.environ.get("MISUAN_FAULT_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    spec = write_credit_job(tmp_path)
    pki = make_pki(tmp_path)
    clean = {p: canonical_outputs(o) for p, o in run_clean(spec, tmp_path / "clean", pki).items()}
    assert set(clean["bank"]) == set(CREDIT_STEPS)
    seconds = step_seconds(tmp_path / "clean")
    for step in CREDIT_STEPS:
        workdir = tmp_path / f"killed-in-{step}"
        point = kill_and_resume(spec, workdir, pki, step, rng, seconds[step])
        why = f"seed {seed}: {point}"
        # the last step may end (with the job) before the moment drawn; every other one is followed by more
        assert point.killed or step == CREDIT_STEPS[-1], why
        assert point.exit_codes[point.party] == (-9 if point.killed else 0), why
        assert all(code != 1 for code in point.exit_codes.values()), why  # the peer failed cleanly, not a crash
        assert point.resumed_codes == {"bank": 0, "partner": 0}, why
        assert {p: canonical_outputs(o) for p, o in point.outputs.items()} == clean, why
        reports = check_ledgers(workdir)
        # over gRPC each party signs its anchors with its TLS key; its certificate travels with them
        assert all(r.checked >= 1 and r.newest.key_kind == "certificate" for r in reports.values()), why
