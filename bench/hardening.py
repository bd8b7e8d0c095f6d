"""Hardening (issue #11) in one run: decoder fuzzing, decoded memory, ledger tampering, kills and resume.

    python bench/hardening.py                      # ~2-3 min on 2 cores
    python bench/hardening.py --fuzz 20000 --kills-per-step 3

Prints:

- fuzz: inputs tried (random bytes, valid and mutated encodings of every registered message, each
  through every decoder: ``wire.decode``, the expected-type check, frame header and hello parsers)
  and how many raised anything but ``MalformedMessageError``/``UnexpectedMessageError`` or
  allocated more than the decode budget (should be 0);
- the worst decoded-memory ratio: bytes allocated while decoding per byte received, for the worst
  payload shapes (many tiny values) at 1 MiB (traced) and 16 MiB of 0-d arrays (peak RSS of a fresh
  process); the bound is 8 per byte plus 64 KiB;
- tamper cases detected: each way finding 1 changed a ledger, caught by ``ledger verify
  --peer-anchors``, ``--expected-head`` and the runner (at the next job, from state.json and from
  the peer's anchor);
- kill points survived: a party SIGKILLed at a random moment of each credit step, both resumed,
  outputs identical to an undisturbed run (up to timings and PSI's secret row order) and both
  ledgers verified against the peer's anchors.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import random
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hypothesis import HealthCheck, given, settings  # noqa: E402

import misuan.api as ms  # noqa: E402
from misuan.audit.ledger import Ledger  # noqa: E402
from misuan.cli import main as cli  # noqa: E402
from misuan.errors import LedgerTamperedError  # noqa: E402
from tests.decoder_fuzz import (  # noqa: E402
    WORST_ITEMS,
    FuzzTally,
    decode_checked,
    decoded_ratio,
    decoded_rss_ratio,
    fuzz_inputs,
    worst_payload,
)
from tests.fault_harness import (  # noqa: E402
    CREDIT_STEPS,
    canonical_outputs,
    check_ledgers,
    kill_and_resume,
    make_pki,
    run_clean,
    step_seconds,
    write_credit_job,
)
from tests.jobfiles import spec_text, write_dataset  # noqa: E402
from tests.ledger_tamper import TAMPERS, tamper  # noqa: E402


def fuzz(n: int) -> FuzzTally:
    tally = FuzzTally()
    inputs = [0]

    @settings(max_examples=n, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(fuzz_inputs())
    def one(case: tuple[str | None, bytes]) -> None:
        inputs[0] += 1
        decode_checked(case[1], case[0], tally)

    tracemalloc.start()
    try:
        one()
    finally:
        tracemalloc.stop()
    print(f"fuzz: {inputs[0]} inputs, {tally.tried} decoder runs, untyped errors or over-budget decodes: "
          f"{len(tally.untyped)}")
    for line in tally.untyped[:5]:
        print(f"  {line}")
    return tally


def decoded_memory() -> float:
    worst = 0.0
    for shape, item in WORST_ITEMS.items():
        ratio, refused = decoded_ratio(worst_payload(item, 1 << 20))
        worst = max(worst, ratio)
        print(f"  1 MiB of {shape:<17} {ratio:5.2f} bytes/byte{' (refused)' if refused else ''}")
    ratio, refused = decoded_rss_ratio("0-d arrays", 16 << 20)
    worst = max(worst, ratio)
    print(f"  16 MiB of 0-d arrays       {ratio:5.2f} bytes/byte (peak RSS){' (refused)' if refused else ''}")
    print(f"worst decoded-memory ratio: {worst:.2f} bytes per byte received (bound: 8 + 64 KiB; before: ~30)")
    return worst


def _job(root: Path, job_id: str, n_steps: int) -> None:
    wide = 'params = { columns = ["balance", "score"], scale = 100, count_rows = true }'
    steps = "".join(f'\n[[step]]\nkind = "secure_sum"\nname = "sum{i}"\n{wide}\n' for i in range(n_steps))
    spec = root / f"{job_id}.toml"
    spec.write_text(spec_text(("bank", "partner"), steps, job_id=job_id))
    ms.simulate(spec, workdir=root / "work", timeout_s=20)


def _tamper_case(root: Path, how: str) -> list[str]:
    """Two jobs, the bank's ledger tampered with; the detections that fired."""
    for i, p in enumerate(("bank", "partner")):
        write_dataset(root / f"{p}.csv", p, seed=i, label=i == 0)
    _job(root, "job-a", 8)
    _job(root, "job-b", 8)
    ledger = root / "work" / "bank" / "ledger.sqlite"
    export = root / "partner.json"
    with Ledger(root / "work" / "partner" / "ledger.sqlite") as partner:
        partner.export_json(export)
    with Ledger(ledger) as bank:
        expected = f"{bank.length()}:{bank.head()}"
    tamper(ledger, TAMPERS[how])
    caught = []
    verify = ["ledger", "verify", "--ledger", str(ledger)]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        if cli([*verify, "--peer-anchors", str(export)]) == 8:
            caught.append("peer anchors")
        if cli([*verify, "--expected-head", expected]) == 8:
            caught.append("expected head")
    for job_id, label in (("job-c", "runner (state.json)"), ("job-d", "runner (peer's anchor)")):
        try:
            _job(root, job_id, 1)
        except LedgerTamperedError:
            caught.append(label)
        for state_path in (root / "work" / "bank" / "jobs").glob("*/state.json"):  # the forger hides its tracks
            state = json.loads(state_path.read_text())
            state.update(ledger_length=None, ledger_head=None)
            state_path.write_text(json.dumps(state))
    return caught


def tamper_cases() -> int:
    detected = 0
    for how in TAMPERS:
        with tempfile.TemporaryDirectory() as tmp:
            caught = _tamper_case(Path(tmp), how)
        detected += len(caught) == 4
        print(f"  {how:<48} caught by {', '.join(caught) or 'nothing'}")
    print(f"tamper cases detected: {detected}/{len(TAMPERS)} (each by all 4 checks)")
    return detected


def kill_points(per_step: int, seed: int) -> tuple[int, int]:
    rng = random.Random(seed)
    survived = total = 0
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        spec, pki = write_credit_job(root), make_pki(root)
        clean = {p: canonical_outputs(o) for p, o in run_clean(spec, root / "clean", pki).items()}
        seconds = step_seconds(root / "clean")
        for step in CREDIT_STEPS:
            for k in range(per_step):
                workdir = root / f"{step}-{k}"
                point = kill_and_resume(spec, workdir, pki, step, rng, seconds[step])
                same = {p: canonical_outputs(o) for p, o in point.outputs.items()} == clean
                try:
                    ledgers_ok = all(r.checked >= 1 for r in check_ledgers(workdir).values())
                except LedgerTamperedError:
                    ledgers_ok = False
                ok = same and ledgers_ok and point.resumed_codes == {"bank": 0, "partner": 0}
                if not point.killed:
                    print(f"  {step:<12} {point.party} had finished before the moment drawn: not a kill point")
                    continue
                survived += ok
                total += 1
                print(f"  {step:<12} killed {point.party:<8} {point.delay_s:4.2f} s in (state: {point.killed_in:<12}) "
                      f"peer exit {point.exit_codes}, resumed {'identical' if same else 'DIFFERENT'}, "
                      f"ledgers {'verified' if ledgers_ok else 'FAILED'}")
    print(f"kill points survived with identical outputs and verified ledgers: {survived}/{total} (seed {seed})")
    return survived, total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fuzz", type=int, default=5000, help="fuzz inputs (each through every decoder)")
    ap.add_argument("--kills-per-step", type=int, default=2)
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    print(f"# misuan hardening, {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.2f}")
    t0 = time.monotonic()
    fuzz(args.fuzz)
    decoded_memory()
    tamper_cases()
    kill_points(args.kills_per_step, args.seed)
    print(f"total {time.monotonic() - t0:.0f} s")


if __name__ == "__main__":
    main()
