"""Step adapters: what turns a job spec's ``[[step]]`` into a protocol call, one module per kind.

- :mod:`.context`: :class:`StepContext`, :class:`StepResult`, :class:`StepKind` (the adapter's world);
- :mod:`.registry`: :data:`STEPS`, the dict of kinds this build runs;
- one module per kind, named as its protocol package: ``psi``, ``woe``, ``secureboost``,
  ``evaluate``, ``secure_sum``; each declares ``KIND``.
"""

from misuan.node.steps.context import StepContext, StepKind, StepResult, param_error, parse_step_params, where
from misuan.node.steps.registry import STEPS, check_step_roles, register_step, registered_kinds, step_kind

__all__ = [
    "STEPS",
    "StepContext",
    "StepKind",
    "StepResult",
    "param_error",
    "parse_step_params",
    "register_step",
    "registered_kinds",
    "step_kind",
    "check_step_roles",
    "where",
]
