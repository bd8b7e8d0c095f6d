"""The Python API for notebooks and scripts.

    import misuan.api as ms
    result = ms.simulate("job.toml")          # every party in this process, over in-memory channels
    result.outputs("bank")["totals"]          # one party's outputs, by step name
    result.ledger("partner")                  # what partner disclosed and learned (LedgerEntry list)

:func:`simulate` runs each party's :func:`misuan.node.runner.run_party` in its own thread (the
local-run harness, :func:`misuan.node.local.run_job_local`), with its own directory
(``<workdir>/<party>``: ledger, job state, step outputs) exactly as ``misuan run`` does in separate
processes over gRPC; only the transport differs.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from misuan.audit.ledger import Ledger, LedgerEntry
from misuan.node.local import run_job_local
from misuan.node.runner import PartyOutcome, Progress, check_runnable
from misuan.node.spec import JobSpec, load_spec, parse_spec

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
    # every party's spec part and dataset checked in full before any party starts (nothing written yet)
    checked = {p: check_runnable(job, p) for p in job.party_names}
    root = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix=f"misuan-{job.job_id}-"))
    outcomes = run_job_local(
        job, workdir=root, transport="threads", resume=resume, progress=progress, timeout_s=timeout_s, checked=checked
    )
    return JobResult(job.job_id, root, {p: o.result for p, o in outcomes.items()})
