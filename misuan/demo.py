"""``misuan demo``: the end-to-end demonstration (PSI, WOE/IV, SecureBoost, report).

Wiring point only: the integrator implements :func:`main` once PSI, WOE, SecureBoost and the report
have landed. The CLI calls ``demo.main(argv)`` with the arguments after ``misuan demo`` and uses its
return value as the exit status.
"""

from __future__ import annotations

from collections.abc import Sequence

from misuan.errors import MisuanError


def main(argv: Sequence[str]) -> int:
    raise MisuanError(
        "the demo is not part of this build yet (it lands with PSI, WOE and SecureBoost); "
        "try `misuan simulate SPEC` with a secure_sum job meanwhile"
    )
