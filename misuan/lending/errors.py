"""The lending package's errors: subclasses of :mod:`misuan.errors`, so they keep its exit codes."""

from __future__ import annotations

from misuan.errors import ConfigError, DataError

__all__ = ["LoanError", "RuleFileError"]


class LoanError(DataError):
    """A loan, schedule or figure that cannot be: a negative principal, a schedule that never repays,
    cash flows no rate balances (exit 3)."""

    help = "the loan or schedule is impossible as given: fix the figure named in the message"


class RuleFileError(ConfigError):
    """A malformed lending rule file (exit 2)."""

    help = "a lending rule file is malformed: fix the field named in the message"
