"""The UCI "default of credit card clients" data (Taiwan, 2005; CC BY 4.0), and its two-institution split.

:func:`load_taiwan` reads the bundled file (``taiwan_default/``, see its ``SOURCE.md`` for attribution,
licence and provenance) and checks its md5, so a damaged install fails loudly instead of training on
garbage.

:func:`split_for_demo` turns the one table into what two institutions would really hold:

- the **bank** (label party): ``customer_id``, the credit limit and the repayment history
  (``LIMIT_BAL``, ``PAY_0``, ``PAY_2`` .. ``PAY_6``) and the label ``default`` (1 = defaulted);
- the **partner** (feature party): ``customer_id``, demographics and statements (``SEX``, ``EDUCATION``,
  ``MARRIAGE``, ``AGE``, ``BILL_AMT1..6``, ``PAY_AMT1..6``); never the label.

Each person gets one national-ID-like number (``C`` + 9 digits, drawn at random without repetition
from the seed, so it carries nothing of the UCI row number). The bank writes it ``"C004821937"``; the
partner's system writes the same ID in lower case with surrounding spaces, ``" c004821937 "``. The two
only match after the ID normalisation PSI applies (strip surrounding white space, then case-fold):
that is deliberate, the demo shows why the normalisation exists. The UCI ``ID`` column (a row
number shared by both sides) is dropped.

Each side keeps a deterministic share of the people (by default the bank 85 %, the partner 80 %, both
70 %), so each has customers the other lacks, and the rows of each table are shuffled independently.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import hashlib
import io
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from misuan.atomic_files import atomic_open
from misuan.errors import ConfigError, DataError

__all__ = [
    "BANK_FEATURES",
    "DATA_FILE",
    "DATA_MD5",
    "ID_COLUMN",
    "LABEL",
    "PARTNER_FEATURES",
    "DemoTablePaths",
    "load_taiwan",
    "normalize_demo_id",
    "split_for_demo",
    "write_demo_tables",
]

DATA_FILE = "default_of_credit_card_clients.csv.gz"
DATA_MD5 = "4ee1c3899f5bc97f2228f4c56a9f3610"  # of the uncompressed CSV, as in SOURCE.md
N_ROWS = 30_000
RAW_LABEL = "default payment next month"
LABEL = "default"
ID_COLUMN = "customer_id"
BANK_FEATURES = ("LIMIT_BAL", "PAY_0", "PAY_2", "PAY_3", "PAY_4", "PAY_5", "PAY_6")
PARTNER_FEATURES = (
    ("SEX", "EDUCATION", "MARRIAGE", "AGE")
    + tuple(f"BILL_AMT{i}" for i in range(1, 7))
    + tuple(f"PAY_AMT{i}" for i in range(1, 7))
)
_ID_DIGITS = 9


def load_taiwan(*, verify: bool = True) -> pd.DataFrame:
    """All 30,000 rows: ``ID``, the 23 features (UCI's names) and ``default`` (0/1, int64).

    With ``verify`` (the default) the bundled file's md5 is checked against :data:`DATA_MD5`.
    """
    ref = resources.files("misuan.datasets") / "taiwan_default" / DATA_FILE
    try:
        raw = gzip.decompress(ref.read_bytes())
    except (FileNotFoundError, OSError, EOFError) as exc:
        raise DataError(
            f"the bundled Taiwan data misuan/datasets/taiwan_default/{DATA_FILE} is missing or not gzip "
            f"({exc}); reinstall misuan"
        ) from exc
    if verify and hashlib.md5(raw, usedforsecurity=False).hexdigest() != DATA_MD5:
        raise DataError(
            f"the bundled Taiwan data misuan/datasets/taiwan_default/{DATA_FILE} fails its md5 check "
            f"(expected {DATA_MD5} of the CSV): the install is damaged, reinstall misuan"
        )
    df = pd.read_csv(io.BytesIO(raw))
    expected = ["ID", *BANK_FEATURES[:1], *PARTNER_FEATURES[:4], *BANK_FEATURES[1:], *PARTNER_FEATURES[4:], RAW_LABEL]
    if list(df.columns) != expected or len(df) != N_ROWS:
        raise DataError(
            f"the bundled Taiwan data has columns {list(df.columns)} and {len(df)} rows, "
            f"expected {expected} and {N_ROWS}: reinstall misuan"
        )
    return df.rename(columns={RAW_LABEL: LABEL})


def normalize_demo_id(raw: str) -> str:
    """The normalisation under which the two sides' IDs match: strip white space, then upper-case.

    PSI's ``IdNormalization`` (trim + case-fold) must map both sides to the same string; this is the
    plain-Python reference the tests use.
    """
    return raw.strip().upper()


def _check_shares(bank_share: float, partner_share: float, overlap: float) -> None:
    for name, v in (("bank_share", bank_share), ("partner_share", partner_share), ("overlap", overlap)):
        if not 0.0 < v <= 1.0:
            raise ConfigError(f"split_for_demo: {name} must be in (0, 1], got {v}")
    if overlap > min(bank_share, partner_share):
        raise ConfigError(
            f"split_for_demo: overlap {overlap} cannot exceed bank_share {bank_share} or partner_share {partner_share}"
        )
    if bank_share + partner_share - overlap > 1.0 + 1e-12:
        raise ConfigError(
            f"split_for_demo: bank_share + partner_share - overlap = {bank_share + partner_share - overlap:.3f} "
            "exceeds 1 (more people than exist): lower a share or raise the overlap"
        )


def split_for_demo(
    seed: int = 0,
    *,
    bank_share: float = 0.85,
    partner_share: float = 0.80,
    overlap: float = 0.70,
    data: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split the Taiwan data into the bank's and the partner's tables (see the module docstring).

    ``bank_share``, ``partner_share`` and ``overlap`` are fractions of all people: exactly
    ``round(overlap * n)`` people are in both tables, ``round(bank_share * n)`` in the bank's and
    ``round(partner_share * n)`` in the partner's. The result depends only on ``seed`` (and ``data``,
    which defaults to :func:`load_taiwan`). Returns ``(bank_df, partner_df)`` with a fresh RangeIndex.
    """
    _check_shares(bank_share, partner_share, overlap)
    df = load_taiwan() if data is None else data
    missing = [c for c in ("ID", *BANK_FEATURES, *PARTNER_FEATURES, LABEL) if c not in df.columns]
    if missing:
        raise DataError(f"split_for_demo: the data lacks columns {missing}")
    n = len(df)
    n_both = round(overlap * n)
    n_bank = round(bank_share * n)
    n_partner = round(partner_share * n)
    if n_bank + n_partner - n_both > n:  # rounding can overshoot by one person at most
        n_both += n_bank + n_partner - n_both - n

    rng = np.random.default_rng(seed)
    # one ID per person, unique, independent of the UCI row order
    numbers = rng.choice(10**_ID_DIGITS, size=n, replace=False)
    ids = np.array([f"C{k:0{_ID_DIGITS}d}" for k in numbers], dtype=object)
    people = rng.permutation(n)
    in_both = people[:n_both]
    bank_rows = np.concatenate([in_both, people[n_both:n_bank]])
    partner_rows = np.concatenate([in_both, people[n_bank : n_bank + n_partner - n_both]])
    # each institution's table in its own order
    bank_rows = rng.permutation(bank_rows)
    partner_rows = rng.permutation(partner_rows)

    bank = pd.DataFrame({ID_COLUMN: ids[bank_rows]})
    for col in BANK_FEATURES:
        bank[col] = df[col].to_numpy()[bank_rows]
    bank[LABEL] = df[LABEL].to_numpy()[bank_rows].astype(np.int64)

    partner = pd.DataFrame({ID_COLUMN: [f" {s.lower()} " for s in ids[partner_rows]]})
    for col in PARTNER_FEATURES:
        partner[col] = df[col].to_numpy()[partner_rows]
    return bank, partner


@dataclasses.dataclass(frozen=True)
class DemoTablePaths:
    """Where :func:`write_demo_tables` put each institution's CSV."""

    bank: Path
    partner: Path


def _write_csv_atomic(df: pd.DataFrame, path: Path) -> None:
    """Write to a temporary file in the same directory, fsync, then rename over ``path``.

    A reader (or a crash) never sees a half-written table.
    """
    with atomic_open(path, "w", newline="") as f:
        # quote every ID so its surrounding spaces survive any CSV reader
        df.to_csv(f, index=False, quoting=csv.QUOTE_NONNUMERIC)


def write_demo_tables(
    directory: str | Path,
    seed: int = 0,
    *,
    bank_share: float = 0.85,
    partner_share: float = 0.80,
    overlap: float = 0.70,
) -> DemoTablePaths:
    """Write ``bank.csv`` and ``partner.csv`` of :func:`split_for_demo` into ``directory`` (created).

    Read them back with ``pd.read_csv(path, dtype={"customer_id": str})``; the partner's IDs keep their
    surrounding spaces (every string is quoted).
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    bank, partner = split_for_demo(seed, bank_share=bank_share, partner_share=partner_share, overlap=overlap)
    paths = DemoTablePaths(bank=out / "bank.csv", partner=out / "partner.csv")
    _write_csv_atomic(bank, paths.bank)
    _write_csv_atomic(partner, paths.partner)
    return paths
