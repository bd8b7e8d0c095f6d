"""The step kinds this build knows: a plain dict from kind to :class:`StepKind`.

Each adapter module declares its ``KIND``; adding a step kind is one import and one entry here.
:func:`register_step` adds (or, with ``replace``, swaps) a whole :class:`StepKind` at run time, for
tests and plugins: to change one part of a built-in kind, pass ``dataclasses.replace(KIND, run=...)``.
"""

from __future__ import annotations

from misuan.errors import JobSpecError
from misuan.node.spec import JobSpec, StepSpec
from misuan.node.steps import (
    evaluate,
    fairness,
    horizontal,
    monitor,
    psi,
    secure_sum,
    secureboost,
    vertical_lr,
    woe,
)
from misuan.node.steps.context import StepKind, where

__all__ = ["STEPS", "check_step_roles", "register_step", "registered_kinds", "step_kind"]

STEPS: dict[str, StepKind] = {
    k.kind: k for k in (
        secure_sum.KIND, psi.KIND, woe.KIND, secureboost.KIND, vertical_lr.KIND, evaluate.KIND, monitor.KIND,
        fairness.KIND,
        horizontal.WOE, horizontal.SCORECARD, horizontal.BOOSTING,
    )
}


def register_step(kind: StepKind, *, replace: bool = False) -> StepKind | None:
    """Register ``kind`` under ``kind.kind``; returns the kind it replaced (``None`` if new).

    Tests and plugins; the built-in kinds are in :data:`STEPS`.
    """
    old = STEPS.get(kind.kind)
    if old is not None and not replace:
        raise ValueError(f"a step kind {kind.kind!r} is already registered (pass replace=True)")
    STEPS[kind.kind] = kind
    return old


def registered_kinds() -> tuple[str, ...]:
    return tuple(STEPS)


def step_kind(step: StepSpec, spec: JobSpec) -> StepKind:
    """The adapter for ``step``, or a :class:`JobSpecError` if this build has none."""
    try:
        return STEPS[step.kind]
    except KeyError:
        raise JobSpecError(
            f"{where(step, spec)}.kind: unknown step kind {step.kind!r}; use one of {sorted(STEPS)}"
        ) from None


def check_step_roles(kind: StepKind, step: StepSpec, spec: JobSpec) -> None:
    """Refuse a step between parties whose roles its kind does not run between (a vertical step
    in a horizontal job, or the other way round), naming the party."""
    for name in step.parties:
        role = spec.party(name).role
        if role not in kind.roles:
            raise JobSpecError(
                f"{where(step, spec)}.parties: a {step.kind!r} step runs between parties of role "
                f"{' / '.join(kind.roles)}; {name!r} has role {role}"
            )
