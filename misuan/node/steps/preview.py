"""What a job will disclose, before it runs: the catalogue entries of each step, with party names.

A step kind's ``preview`` picks, from its protocols' catalogues (``protocols/<name>/disclosures.py``),
the entries its parameters switch on, and :func:`plan` turns the catalogue's roles ("label_party",
"each party", "the other party", ...) into the job's party names. The consent page of a node shows
the result, and a test compares it with what a run then records in the ledger. Entries that the
data decide (a SecureBoost split on the partner's feature) are listed with ``data_dependent`` set:
the run records them only when the data lead there.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Mapping

from misuan.net.disclosure import DisclosureKind
from misuan.net.protocol import AGGREGATOR, DATA_PARTY, FEATURE_PARTY, LABEL_PARTY
from misuan.node.spec import JobSpec, StepSpec

__all__ = ["ALL", "PlannedDisclosure", "plan"]

ALL = "all"  # the discloser of a joint result (no single party sends it)
_OTHER_ROLES = ("the other party", "each peer")
_EACH = "each party"
# catalogue roles that are the job spec's roles (secure aggregation's catalogue says "each data party")
_SPEC_ROLES = {
    LABEL_PARTY: LABEL_PARTY, FEATURE_PARTY: FEATURE_PARTY, "each data party": DATA_PARTY, "the aggregator": AGGREGATOR,
}


@dataclasses.dataclass(frozen=True)
class PlannedDisclosure:
    """One catalogue entry as it will happen in this job: the step, the value, who to whom."""

    step: str
    protocol: str
    what: str
    form: str
    discloser: str
    recipient: str
    when: str
    data_dependent: bool = False

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        """What a ledger entry of the run is compared on."""
        return (self.step, self.what, self.form, self.discloser, self.recipient)


def _parties_of(
    role: str, step: StepSpec, spec: JobSpec, other: str | None, learners: Collection[str], named: Mapping[str, str]
) -> list[str]:
    names = list(step.parties)
    if role in named:  # a protocol's own roles ("the receiver"), with the party that plays each
        return [named[role]] if named[role] != other else []
    if role in _SPEC_ROLES:
        return [p for p in names if spec.party(p).role == _SPEC_ROLES[role] and p != other]
    if role == ALL:
        return [ALL]
    if role == _EACH:
        return names
    if role in _OTHER_ROLES:
        return [p for p in names if p != other]
    if role.startswith("the other party, if it learns"):
        return [p for p in names if p != other and p in learners]
    raise ValueError(f"the preview does not know the catalogue role {role!r}: teach misuan.node.steps.preview")


def plan(
    kinds: Iterable[DisclosureKind], step: StepSpec, spec: JobSpec, *, learners: Collection[str] = (),
    data_dependent: Collection[DisclosureKind] = (), named: Mapping[str, str] | None = None,
) -> list[PlannedDisclosure]:
    """The entries of ``kinds`` between the step's parties; ``learners``: who learns a PSI intersection."""
    out = []
    roles = dict(named or {})
    for k in kinds:
        for d in _parties_of(k.discloser, step, spec, None, learners, roles):
            for r in _parties_of(k.recipient, step, spec, d, learners, roles):
                if r != d:
                    out.append(PlannedDisclosure(step.name, k.protocol, k.what, k.form, d, r, k.when, k in data_dependent))
    return out
