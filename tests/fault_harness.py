"""Kill a party mid-step and resume: the harness of the fault test and of ``bench/hardening.py``.

Each party runs as the ``misuan run`` an operator starts (its own OS process, gRPC + mutual TLS on
loopback). :func:`kill_and_resume` starts both, waits until the chosen step is running on the chosen
party (its ``state.json`` says so), waits a random moment more, kills that party with SIGKILL, lets
the peer fail, then reruns both with ``--resume`` and returns what each party ended with.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from misuan.audit.ledger import Ledger
from misuan.audit.peer_anchors import PeerAnchorReport, check_peer_anchors, load_export
from misuan.node.runner import read_outputs
from tests.jobfiles import free_ports

PARTIES = ("bank", "partner")
CREDIT_STEPS = ("psi", "woe", "secureboost", "evaluate")
JOB_ID = "fault-job"


def write_credit_job(root: Path, n_rows: int = 400) -> Path:
    """Small bank and partner tables from the bundled data and a psi -> woe -> secureboost -> evaluate spec."""
    import pandas as pd

    from misuan.datasets import taiwan

    bank, partner = taiwan.split_for_demo(seed=2)
    bank_keys, partner_keys = bank["customer_id"].map(taiwan.normalize_demo_id), partner["customer_id"].map(
        taiwan.normalize_demo_id
    )
    shared = set(bank_keys) & set(partner_keys)
    # n_rows shared customers, and a tenth more on each side that the other lacks
    keep = set(sorted(shared)[:n_rows])
    bank = pd.concat([bank[bank_keys.isin(keep)], bank[~bank_keys.isin(shared)].iloc[: n_rows // 10]])
    partner = pd.concat([partner[partner_keys.isin(keep)], partner[~partner_keys.isin(shared)].iloc[: n_rows // 10]])
    bank.to_csv(root / "bank.csv", index=False)
    partner.to_csv(root / "partner.csv", index=False)
    feats = ", ".join(f'"{c}"' for c in taiwan.PARTNER_FEATURES[:4])
    spec = root / "job.toml"
    spec.write_text(textwrap.dedent(f"""\
        version = 1
        [job]
        id = "{JOB_ID}"
        timeout_s = 60
        [[party]]
        name = "bank"
        role = "label_party"
        address = "127.0.0.1:1"
        dataset = {{ path = "bank.csv", id_column = "customer_id", label_column = "default", features = ["LIMIT_BAL", "PAY_0"] }}
        [[party]]
        name = "partner"
        role = "feature_party"
        address = "127.0.0.1:2"
        dataset = {{ path = "partner.csv", id_column = "customer_id", features = [{feats}] }}
        [[step]]
        kind = "psi"
        params = {{ reveal = "both", normalize = {{ case = "casefold" }} }}
        [[step]]
        kind = "woe"
        params = {{ n_bins = 4, min_bin_size = 20, workers = 1 }}
        [[step]]
        kind = "secureboost"
        params = {{ n_estimators = 2, max_depth = 2, max_bin = 8, n_jobs = 1, test_fraction = 0.25, split_seed = 3 }}
        [[step]]
        kind = "evaluate"
        """), encoding="utf-8")
    return spec


def make_pki(root: Path) -> Path:
    from misuan.net.local import make_test_pki

    d = root / "pki"
    make_test_pki(d, PARTIES)
    return d


def _start(spec: Path, workdir: Path, pki: Path, resume: bool, logs: Path) -> dict[str, subprocess.Popen[bytes]]:
    ports = dict(zip(PARTIES, free_ports(len(PARTIES)), strict=True))
    book = [a for p, port in ports.items() for a in ("--address", f"{p}=127.0.0.1:{port}")]
    logs.mkdir(parents=True, exist_ok=True)
    procs = {}
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root))
    for p in PARTIES:
        cmd = [sys.executable, "-m", "misuan.cli", "run", str(spec), "--as", p, "--workdir", str(workdir),
               "--tls-dir", str(pki), "--listen", f"127.0.0.1:{ports[p]}", *book, *(["--resume"] if resume else [])]
        with open(logs / f"{p}-{time.monotonic_ns()}.log", "wb") as log:
            procs[p] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=spec.parent, env=env)
    return procs


def _wait(procs: dict[str, subprocess.Popen[bytes]], timeout_s: float) -> dict[str, int]:
    deadline = time.monotonic() + timeout_s
    codes = {}
    for p, proc in procs.items():
        try:
            codes[p] = proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            codes[p] = proc.wait()
    return codes


def run_clean(spec: Path, workdir: Path, pki: Path, timeout_s: float = 300) -> dict[str, dict[str, Any]]:
    """Run the job once, undisturbed; each party's outputs by step."""
    codes = _wait(_start(spec, workdir, pki, False, workdir / "logs"), timeout_s)
    if any(codes.values()):
        raise RuntimeError(f"the clean run failed: exit codes {codes}; logs in {workdir / 'logs'}")
    return {p: read_outputs(workdir / p, JOB_ID) for p in PARTIES}


def step_seconds(workdir: Path) -> dict[str, float]:
    """How long each step took the bank in a finished run (from its step files)."""
    steps = workdir / "bank" / "jobs" / JOB_ID / "steps"
    docs = [json.loads(p.read_text(encoding="utf-8")) for p in steps.glob("*.json")]
    return {d["step"]: float(d["seconds"]) for d in docs}


_TIMING_KEYS = {"seconds", "timings", "history"}  # wall-clock measurements: differ in every run


def canonical_outputs(outputs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Outputs as a comparison of two runs should see them.

    Equal up to what differs between any two honest runs by design: timings; PSI's secret row order
    (a fresh random permutation each run), so lists of rows and IDs are compared as sets and the
    hold-out scores by customer; and the last bits of floats summed in that order (9 significant
    digits kept; the demo reports 4 decimals).
    """
    out = {}
    for step, doc in outputs.items():
        doc = dict(doc)
        if {"test_ids", "scores", "y_true"} <= set(doc):
            doc["scores"] = sorted(zip(doc.pop("test_ids"), doc["scores"], doc.pop("y_true"), strict=True))
        out[step] = _canonical(doc)
    return out


def _canonical(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _canonical(v, k) for k, v in value.items() if k not in _TIMING_KEYS}
    if isinstance(value, (list, tuple)):
        items = [_canonical(v) for v in value]
        return sorted(items, key=repr) if key in ("rows", "train_ids", "scores") else items
    if isinstance(value, float):
        return float(f"{value:.9g}")
    return value


def _state(workdir: Path, party: str) -> dict[str, Any]:
    try:
        return dict(json.loads((workdir / party / "jobs" / JOB_ID / "state.json").read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}


@dataclasses.dataclass
class KillPoint:
    step: str  # the step the kill was aimed at
    party: str  # the party killed
    delay_s: float  # how long after the step started running
    killed_in: str  # what the party's state said it was doing when killed
    killed: bool  # False if the party had already exited (the job ended before the moment drawn)
    exit_codes: dict[str, int]  # of the run that was killed (the peer's tells how it noticed)
    resumed_codes: dict[str, int]  # of the run with --resume
    outputs: dict[str, dict[str, Any]]  # each party's outputs after the resumed run


def kill_and_resume(
    spec: Path, workdir: Path, pki: Path, step: str, rng: random.Random, step_s: float = 0.4, timeout_s: float = 300
) -> KillPoint:
    """Start the job, SIGKILL a random party at a random moment of ``step``, then resume both.

    The moment is drawn uniformly from the step's first ``step_s`` seconds (how long it took in
    an undisturbed run, :func:`step_seconds`), counted from when the party's state says it runs.
    """
    party = rng.choice(PARTIES)
    procs = _start(spec, workdir, pki, False, workdir / "logs")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and procs[party].poll() is None:
        if _state(workdir, party).get("steps", {}).get(step, {}).get("status") == "running":
            break
        time.sleep(0.01)
    delay = rng.uniform(0.0, step_s)
    time.sleep(delay)
    state = _state(workdir, party)
    running = [s for s, v in state.get("steps", {}).items() if v.get("status") == "running"]
    killed_in = running[0] if running else f"after the steps ({state.get('status')})"
    killed = procs[party].poll() is None
    if killed:
        procs[party].send_signal(signal.SIGKILL)
    codes = _wait(procs, timeout_s)
    resumed = _wait(_start(spec, workdir, pki, True, workdir / "logs"), timeout_s)
    outputs = {p: read_outputs(workdir / p, JOB_ID) for p in PARTIES}
    return KillPoint(step, party, delay, killed_in, killed, codes, resumed, outputs)


def check_ledgers(workdir: Path) -> dict[str, PeerAnchorReport]:
    """Each party's ledger verifies, and is consistent with the anchors its peer holds of it."""
    exports = {}
    for p in PARTIES:
        with Ledger(workdir / p / "ledger.sqlite") as led:
            exports[p] = led.export_json(workdir / f"{p}-ledger.json")
    checked = {}
    for p, peer in zip(PARTIES, reversed(PARTIES), strict=True):
        with Ledger(workdir / p / "ledger.sqlite") as led:
            led.verify()
            checked[p] = check_peer_anchors(led, load_export(exports[peer]))
    return checked
