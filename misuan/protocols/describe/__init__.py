"""Joint descriptive statistics over the intersection: each party summarises its own columns.

Each party computes, on its own rows of the intersection (already aligned by PSI), per numeric
column: the missing rate, mean, sample standard deviation and a few quantiles. It then sends the
peer the summaries of exactly the columns its user listed in ``share`` (nothing when ``share`` is
empty) and receives the peer's. No row crosses; there is no cryptography beyond the channel's TLS.

Small-cell rule: a column with fewer than ``min_count`` non-missing values has its mean, standard
deviation and quantiles withheld (NaN), since with one or two values they *are* the values.

Security model: semi-honest. Leakage: to the peer, for each shared column, the row count (known from
PSI), the missing rate, mean, standard deviation and the requested quantiles. Quantiles are order
statistics (interpolated between two neighbouring values), so each is close to the value of some
customer without saying whose; the defaults leave out the minimum and maximum for that reason.
Ledger (both sides, the catalogue in :mod:`.disclosures`): per shared column ``summary statistics
of a column`` (aggregate), the column's name in the detail.

Layout: :mod:`.messages` (``SharedSummaries``, ``PROTOCOL``), :mod:`.params`
(:class:`DescribeParams`), :mod:`.summaries` (the local computation), :mod:`.disclosures` (the
catalogue), :mod:`.party` (the one role, :class:`DescribeParty`, and the driver
:func:`joint_describe`).
"""

from misuan.protocols.describe.disclosures import DISCLOSURES
from misuan.protocols.describe.messages import PROTOCOL, STEP, SharedSummaries
from misuan.protocols.describe.params import DEFAULT_QUANTILES, DescribeParams
from misuan.protocols.describe.party import DescribeParty, joint_describe
from misuan.protocols.describe.summaries import ColumnSummary, DescribeResult, describe_columns

__all__ = [
    "DEFAULT_QUANTILES",
    "DISCLOSURES",
    "PROTOCOL",
    "STEP",
    "ColumnSummary",
    "DescribeParams",
    "DescribeParty",
    "DescribeResult",
    "SharedSummaries",
    "describe_columns",
    "joint_describe",
]
