"""The Python API for notebooks and scripts.

    import misuan.api as ms
    result = ms.simulate("job.toml")          # every party in this process, over in-memory channels
    result.outputs("bank")["totals"]          # one party's outputs, by step name
    result.ledger("partner")                  # what partner disclosed and learned (LedgerEntry list)

:func:`simulate` runs each party's :func:`misuan.node.runner.run_party` in its own thread, with its
own directory (``<workdir>/<party>``: ledger, job state, step outputs) exactly as ``misuan run``
does in separate processes over gRPC; only the transport differs.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from misuan.audit.ledger import Ledger, LedgerEntry
from misuan.net.channel import Channel
from misuan.net.disclosure import DisclosureRecorder
from misuan.net.memory import MemoryNetwork
from misuan.node.runner import PartyOutcome, Progress, check_runnable, run_party
from misuan.node.spec import JobSpec, load_spec, parse_spec
from misuan.protocols.simulation import run_concurrently

__all__ = ["JobResult", "load_job", "simulate"]


@dataclasses.dataclass
class JobResult:
    """Every party's outcome of a simulated job."""

    job_id: str
    workdir: Path
    parties: dict[str, PartyOutcome]

    def outputs(self, party: str) -> dict[str, dict[str, Any]]:
        """``party``'s outputs of every step, by step name."""
        return self._party(party).outputs

    def ledger_path(self, party: str) -> Path:
        return self._party(party).ledger_path

    def ledger(self, party: str) -> list[LedgerEntry]:
        """``party``'s ledger entries for this job (after verifying the whole chain)."""
        with Ledger(self.ledger_path(party)) as led:
            led.verify()
            return led.entries(self.job_id)

    def _party(self, party: str) -> PartyOutcome:
        if party not in self.parties:
            raise KeyError(f"{party!r} is not a party of job {self.job_id!r}; parties are {sorted(self.parties)}")
        return self.parties[party]


def load_job(spec: str | os.PathLike[str] | Mapping[str, Any] | JobSpec, base_dir: str | os.PathLike[str] = ".") -> JobSpec:
    """A validated :class:`JobSpec` from a path, a parsed dict (relative paths against ``base_dir``) or a spec."""
    if isinstance(spec, JobSpec):
        return spec
    if isinstance(spec, Mapping):
        return parse_spec(spec, base_dir)
    return load_spec(spec)


def simulate(
    spec: str | os.PathLike[str] | Mapping[str, Any] | JobSpec,
    *,
    workdir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    timeout_s: float | None = None,
    progress: Progress | None = None,
    base_dir: str | os.PathLike[str] = ".",
) -> JobResult:
    """Run every party of ``spec`` in this process over in-memory channels; see the module docstring.

    ``workdir`` defaults to a new temporary directory (``result.workdir``). If a party fails, the
    others stop with it and the first real cause is raised (a misuan error with its exit code).
    """
    job = load_job(spec, base_dir)
    for p in job.party_names:  # fail fast, before any thread waits on a peer
        check_runnable(job, p)
    root = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix=f"misuan-{job.job_id}-"))
    net = MemoryNetwork(job.party_names, job_id=job.job_id)
    wait_s = timeout_s if timeout_s is not None else job.timeout_s

    def opener(party: str) -> Any:
        def open_channel(recorder: DisclosureRecorder) -> Channel:
            return net.channel(party, recorder=recorder, timeout_s=wait_s)

        return open_channel

    def run(party: str) -> PartyOutcome:
        return run_party(job, party, party_dir=root / party, open_channel=opener(party), resume=resume, progress=progress)

    # on failure, close the party's end (also if it failed before opening its own) to release the peers
    outcomes = run_concurrently(
        {p: functools.partial(run, p) for p in job.party_names}, on_failure=lambda p: net.channel(p).close()
    )
    return JobResult(job.job_id, root, outcomes)
