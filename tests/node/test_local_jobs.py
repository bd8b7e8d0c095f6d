"""Whole jobs through the local-run harness: threads (run_party) and processes (`misuan run` children)."""

from __future__ import annotations

from pathlib import Path

import pytest

from misuan.node.local import ProcessOptions, run_job_local
from misuan.node.runner import read_outputs
from misuan.node.spec import load_spec
from tests.jobfiles import write_job


def test_a_job_gives_the_same_outputs_in_threads_and_in_processes(tmp_path: Path) -> None:
    spec_path = write_job(tmp_path)
    job = load_spec(spec_path)
    threads = run_job_local(job, workdir=tmp_path / "t", progress=None)
    logs = tmp_path / "logs"
    processes = run_job_local(
        job, workdir=tmp_path / "p", transport="processes",
        processes=ProcessOptions(spec_path, log_dir=logs, shown=[]),
    )
    for p in job.party_names:
        assert threads[p].error is None and processes[p].error is None
        assert threads[p].result.outputs == read_outputs(tmp_path / "t" / p, job.job_id)
        assert read_outputs(tmp_path / "p" / p, job.job_id) == threads[p].result.outputs
        # the threads outcome also holds what the party wrote to its ledger
        assert {d.step for d in threads[p].disclosures} == {"totals", "scores"}
        # a party not shown writes its progress to its log
        assert f"[{p}] job {job.job_id} completed" in (logs / f"{p}.log").read_text()


def test_processes_need_the_spec_file_the_children_read(tmp_path: Path) -> None:
    job = load_spec(write_job(tmp_path))
    with pytest.raises(ValueError, match="ProcessOptions"):
        run_job_local(job, workdir=tmp_path / "w", transport="processes")
