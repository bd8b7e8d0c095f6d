from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import pytest

from misuan.audit.ledger import Ledger
from misuan.crypto.certs import create_ca, issue_party_cert
from misuan.errors import AuthenticationError, ConfigError, JobSpecError
from misuan.net.channel import Channel
from misuan.net.disclosure import DisclosureRecorder
from misuan.net.local import make_test_pki
from misuan.net.memory import MemoryNetwork
from misuan.node import steps
from misuan.node.consent import CONSENT_STEP, decide, decision_for, preview_job
from misuan.node.runner import ChannelOpener, PartyOutcome
from misuan.node.server import Node, submit
from misuan.node.spec import JobSpec, NodeConfig, load_spec
from misuan.node.steps import secure_sum as secure_sum_step
from tests.jobfiles import free_ports, write_job

ROOT = Path(__file__).resolve().parents[2]


def _memory_nodes(
    tmp_path: Path, parties: tuple[str, ...] = ("bank", "partner"), approval: Literal["required", "auto"] = "auto"
) -> dict[str, Node]:
    networks: dict[str, MemoryNetwork] = {}
    lock = threading.Lock()

    def opener_for(party: str) -> Callable[[JobSpec], ChannelOpener]:
        def opener(spec: JobSpec) -> ChannelOpener:
            with lock:  # one network per run of a job: a finished run's network has closed ends
                if spec.job_id not in networks or networks[spec.job_id].closed:
                    networks[spec.job_id] = MemoryNetwork(spec.party_names, spec.job_id)
                net = networks[spec.job_id]

            def open_channel(rec: DisclosureRecorder) -> Channel:
                return net.channel(party, recorder=rec, timeout_s=10)

            return open_channel

        return opener

    nodes = {}
    pki = make_test_pki(tmp_path / "pki", list(parties))  # the nodes sign their operators' decisions with these keys
    for p in parties:
        cfg = NodeConfig(p, "127.0.0.1:1", tmp_path / f"node-{p}", pki[p], tmp_path / f"{p}.toml", approval=approval)
        nodes[p] = Node(cfg, opener=opener_for(p), progress=None)
    return nodes


def _run_once_all(nodes: dict[str, Node]) -> dict[str, PartyOutcome | None]:
    out: dict[str, PartyOutcome | None] = {}
    threads = [threading.Thread(target=lambda p=p: out.__setitem__(p, nodes[p].run_once())) for p in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return out


def test_nodes_run_submitted_jobs_into_their_data_dirs(tmp_path: Path) -> None:
    spec = write_job(tmp_path)
    nodes = _memory_nodes(tmp_path)
    for n in nodes.values():
        entry = submit(spec, n.config)
        assert entry.parent == n.config.inbox and entry.name.endswith("-job-1.job.json")
    out = _run_once_all(nodes)
    for p, n in nodes.items():
        assert out[p] is not None and out[p].ran == ["totals", "scores"]  # type: ignore[union-attr]
        assert (n.config.data_dir / "jobs" / "job-1" / "steps" / "scores.json").is_file()
        assert (n.config.data_dir / "ledger.sqlite").is_file()
        assert n.pending() == [] and len(list((n.config.inbox / "done").glob("*.job.json"))) == 1
    assert out["bank"].outputs == out["partner"].outputs  # type: ignore[union-attr]


def test_submit_refuses_a_bad_spec_and_node_files_bad_entries(tmp_path: Path) -> None:
    spec = write_job(tmp_path)
    nodes = _memory_nodes(tmp_path)
    spec.write_text(spec.read_text().replace('kind = "secure_sum"', 'kind = "summ"', 1))
    with pytest.raises(JobSpecError, match=r"step\[1\] 'totals'.kind: unknown step kind 'summ'"):
        submit(spec, nodes["bank"].config)
    assert nodes["bank"].pending() == []
    junk = nodes["bank"].config.inbox / "x.job.json"
    junk.write_text("{not json")
    assert nodes["bank"].run_once() is None
    failed = nodes["bank"].config.inbox / "failed"
    assert (failed / "x.job.json").exists()
    assert "is unreadable" in (failed / "x.job.json.error.txt").read_text()


@pytest.fixture
def stop_after_totals() -> Iterator[list[Node]]:
    """An adapter that asks the bank's node to stop while step 'totals' runs (a SIGTERM mid-step)."""
    real = secure_sum_step.run_secure_sum
    target: list[Node] = []

    def run(ctx: steps.StepContext) -> steps.StepResult:
        if ctx.step.name == "totals" and ctx.party == "bank":
            target[0].stop_requested.set()
        return real(ctx)

    steps.register_step(dataclasses.replace(secure_sum_step.KIND, run=run), replace=True)
    yield target
    steps.register_step(secure_sum_step.KIND, replace=True)


def test_stop_request_finishes_the_step_then_resume_completes(tmp_path: Path, stop_after_totals: list[Node]) -> None:
    spec = write_job(tmp_path)
    nodes = _memory_nodes(tmp_path)
    stop_after_totals.append(nodes["bank"])
    for n in nodes.values():
        submit(spec, n.config)
    out = _run_once_all(nodes)
    assert out == {"bank": None, "partner": None}
    for n in nodes.values():
        jd = n.config.data_dir / "jobs" / "job-1"
        assert sorted(p.name for p in (jd / "steps").iterdir()) == ["totals.json"]  # the step in flight finished
    reason = next((nodes["bank"].config.inbox / "failed").glob("*.error.txt")).read_text()
    assert "stopped on request before step 'scores'" in reason
    state = json.loads((nodes["bank"].config.data_dir / "jobs" / "job-1" / "state.json").read_text())
    assert state["status"] == "interrupted"

    nodes["bank"].stop_requested.clear()
    for n in nodes.values():
        submit(spec, n.config, resume=True)
    out = _run_once_all(nodes)
    assert out["bank"] is not None and out["bank"].skipped == ["totals"] and out["bank"].ran == ["scores"]


def _stderr_or_stacks(proc: subprocess.Popen[str], timeout_s: float = 30) -> str:
    """The process's stderr once it exits; if it hangs, SIGABRT makes faulthandler append its threads' stacks."""
    try:
        return proc.communicate(timeout=timeout_s)[1]
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        return f"{proc.communicate(timeout=30)[1]}\n(did not stop within {timeout_s} s of SIGTERM: stacks above)"


def test_node_processes_over_grpc_run_a_job_and_stop_on_sigterm(tmp_path: Path) -> None:
    ports = free_ports(2)
    spec = write_job(tmp_path, ports=ports)
    create_ca(tmp_path / "certs")
    procs = {}
    for p, port in zip(("bank", "partner"), ports, strict=True):
        issue_party_cert(tmp_path / "certs", p)
        (tmp_path / f"{p}.toml").write_text(
            f'version = 1\nparty = "{p}"\nlisten = "127.0.0.1:{port}"\ndata_dir = "node-{p}"\n'
            f'tls = {{ ca = "certs/ca.pem", cert = "certs/{p}.pem", key = "certs/{p}.key" }}\napproval = "auto"\n'
        )
        procs[p] = subprocess.Popen(
            [sys.executable, "-m", "misuan.cli", "node", "start", "--config", str(tmp_path / f"{p}.toml"), "--poll", "0.1"],
            cwd=ROOT, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONFAULTHANDLER": "1"},
        )
    try:
        for p in procs:
            res = subprocess.run(
                [sys.executable, "-m", "misuan.cli", "submit", str(spec), "--config", str(tmp_path / f"{p}.toml")],
                cwd=ROOT, capture_output=True, text=True, timeout=60,
            )
            assert res.returncode == 0, res.stderr
        deadline = time.monotonic() + 60
        done = [tmp_path / f"node-{p}" / "jobs" / "job-1" / "steps" / "scores.json" for p in procs]
        while not all(d.exists() for d in done) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert all(d.exists() for d in done)
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        errs = {p: _stderr_or_stacks(proc) for p, proc in procs.items()}
    for p, proc in procs.items():
        assert proc.returncode == 0, errs[p]
        assert "SIGTERM: finishing the current step" in errs[p] and f"[node {p}] stopped" in errs[p]
        state = json.loads((tmp_path / f"node-{p}" / "jobs" / "job-1" / "state.json").read_text())
        assert state["status"] == "completed"


def test_first_signal_requests_a_stop_second_aborts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    node = _memory_nodes(tmp_path)["bank"]
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        node._install_signals()
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        assert node.stop_requested.is_set()
        assert "SIGTERM: finishing the current step" in capsys.readouterr().err
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.5)
    finally:
        for s, h in saved.items():
            signal.signal(s, h)


# --- consent ----------------------------------------------------------------------------------------
def test_a_job_waits_for_its_operators_approval_then_runs(tmp_path: Path) -> None:
    spec_path = write_job(tmp_path)
    nodes = _memory_nodes(tmp_path, approval="required")
    for n in nodes.values():
        submit(spec_path, n.config)
    assert _run_once_all(nodes) == {"bank": None, "partner": None}  # nobody approved: nothing ran
    for n in nodes.values():
        pending = json.loads((n.pending_dir / "job-1.json").read_text())
        learns = [d for d in pending["preview"]["disclosures"] if d["recipient"] == n.config.party]
        assert learns and all(d["step"] in ("totals", "scores") for d in learns)
        assert len(n.pending()) == 1 and not any((n.config.data_dir / "jobs").iterdir())
    spec = load_spec(spec_path)
    for n in nodes.values():
        decide(n.config, spec, preview_job(spec, n.config.party), "approved", operator="compliance officer")
    out = _run_once_all(nodes)
    assert out["bank"] is not None and out["bank"].ran == ["totals", "scores"]
    for n in nodes.values():
        assert not (n.pending_dir / "job-1.json").exists()
        with Ledger(n.config.ledger_path) as led:
            consent = [e for e in led.entries("job-1") if e.step == CONSENT_STEP]
        assert len(consent) == 1 and consent[0].detail["operator"] == "compliance officer"
        assert consent[0].detail["spec_hash"] == spec.shared_hash() and len(consent[0].detail["signature"]) > 100


def test_a_refused_job_is_filed_with_the_reason_and_a_standing_approval_covers_reruns(tmp_path: Path) -> None:
    spec_path = write_job(tmp_path)
    nodes = _memory_nodes(tmp_path, approval="required")
    partner = nodes["partner"]
    submit(spec_path, partner.config)
    spec = load_spec(spec_path)
    preview = preview_job(spec, "partner")
    with pytest.raises(ConfigError, match="needs a reason"):
        decide(partner.config, spec, preview, "refused")
    decide(partner.config, spec, preview, "refused", reason="scores step not covered by our data-sharing agreement")
    assert partner.run_once() is None
    reason = next((partner.config.inbox / "failed").glob("*.error.txt")).read_text()
    assert "JobRefusedError" in reason and "not covered by our data-sharing agreement" in reason

    # a standing approval of the template covers the same job under a new id
    # the refusal was for that submission: submitted again, the job is asked about again
    assert decision_for(partner.config, spec, preview) is None
    decide(partner.config, spec, preview, "approved", standing=True)
    rerun = load_spec_text(tmp_path, "rerun.toml", spec_path.read_text().replace('id = "job-1"', 'id = "job-2"'))
    assert decision_for(partner.config, rerun, preview_job(rerun, "partner")) is not None
    changed = load_spec_text(tmp_path, "changed.toml", spec_path.read_text().replace('"totals"', '"totals_v2"'))
    assert decision_for(partner.config, changed, preview_job(changed, "partner")) is None  # another template: asks again


def test_an_approval_file_not_signed_by_the_node_is_refused(tmp_path: Path) -> None:
    spec_path = write_job(tmp_path)
    nodes = _memory_nodes(tmp_path, approval="required")
    bank = nodes["bank"].config
    spec = load_spec(spec_path)
    decide(bank, spec, preview_job(spec, "bank"), "approved")
    path = bank.data_dir / "approvals" / "job-1.json"
    doc = json.loads(path.read_text())
    doc["operator"] = "someone else"
    path.write_text(json.dumps(doc))
    with pytest.raises(AuthenticationError, match=r"is not signed by the key of .*bank.pem \(this node.s key\)"):
        decision_for(bank, spec, preview_job(spec, "bank"))


def load_spec_text(root: Path, name: str, text: str) -> JobSpec:
    (root / name).write_text(text)
    return load_spec(root / name)
