"""A party's directory of one job (``jobs/<job_id>/``): state, step outputs, artefacts, resumable work.

Every file under it is written atomically by the runner (:mod:`misuan.node.runner`); this class
names the paths and prepares, checks and cleans the directories.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from misuan.errors import ConfigError

__all__ = ["JobFiles"]


class JobFiles:
    """The job directory of one party, with atomic writes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state_path = root / "state.json"
        self.steps = root / "steps"
        self.artefacts = root / "artefacts"
        self.work = root / "work"  # state a step keeps for a resume (spilled PSI buckets), per step hash

    def step_path(self, name: str) -> Path:
        return self.steps / f"{name}.json"

    def prepare(self, job_id: str, party: str, resume: bool) -> None:
        """Create the directories; refuse to overwrite earlier results unless resuming."""
        if not resume and self.steps.is_dir() and any(self.steps.glob("*.json")):
            raise ConfigError(
                f"job {job_id!r} already has results for {party} in {self.root}; "
                "pass --resume to continue it, or remove that directory to start again"
            )
        self.steps.mkdir(parents=True, exist_ok=True)
        self.clean_staging()
        if not resume:  # a fresh run: nothing of an earlier run is resumed
            shutil.rmtree(self.work, ignore_errors=True)

    def completed(self, hashes: dict[str, str]) -> list[str]:
        done = []
        for name, want in hashes.items():
            try:
                doc = json.loads(self.step_path(name).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if doc.get("step_hash") != want:
                continue
            if all((self.artefacts / name / a).is_file() for a in doc.get("artefacts", [])):
                done.append(name)
        return done

    def clean_staging(self) -> None:
        """Remove staging directories a killed run left behind."""
        if self.artefacts.is_dir():
            for p in self.artefacts.glob(".staging-*"):
                shutil.rmtree(p, ignore_errors=True)
