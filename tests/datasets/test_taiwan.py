from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from misuan.datasets import taiwan
from misuan.datasets.taiwan import (
    BANK_FEATURES,
    ID_COLUMN,
    LABEL,
    PARTNER_FEATURES,
    load_taiwan,
    normalize_demo_id,
    split_for_demo,
    write_demo_tables,
)
from misuan.errors import ConfigError, DataError

DATA_DIR = Path(taiwan.__file__).parent / "taiwan_default"


@pytest.fixture(scope="module")
def split() -> tuple[pd.DataFrame, pd.DataFrame]:
    return split_for_demo(seed=0)


def test_bundled_file_is_the_documented_one() -> None:
    source = (DATA_DIR / "SOURCE.md").read_text(encoding="utf-8")
    assert "CC BY 4.0" in source and "Yeh, I. C. & Lien, C. H. (2009)" in source
    shipped = hashlib.md5((DATA_DIR / taiwan.DATA_FILE).read_bytes(), usedforsecurity=False).hexdigest()
    assert shipped in source and taiwan.DATA_MD5 in source


def test_load_taiwan_shape_label_and_positive_rate() -> None:
    df = load_taiwan()
    assert df.shape == (30_000, 25)
    assert LABEL in df.columns and "default payment next month" not in df.columns
    assert set(df[LABEL].unique()) == {0, 1}
    assert int(df[LABEL].sum()) == 6_636  # the positive count SOURCE.md states
    assert not df.isna().any().any()
    assert df["ID"].tolist() == list(range(1, 30_001))


def test_load_taiwan_refuses_a_damaged_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(taiwan, "DATA_MD5", "0" * 32)
    with pytest.raises(DataError, match="md5"):
        load_taiwan()


def test_split_columns_and_no_label_at_partner(split: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    bank, partner = split
    assert list(bank.columns) == [ID_COLUMN, *BANK_FEATURES, LABEL]
    assert list(partner.columns) == [ID_COLUMN, *PARTNER_FEATURES]
    assert LABEL not in partner.columns and "ID" not in partner.columns and "ID" not in bank.columns
    # the two sides split UCI's 23 features between them, without sharing any
    features = set(load_taiwan().columns) - {"ID", LABEL}
    assert set(BANK_FEATURES) | set(PARTNER_FEATURES) == features
    assert not set(BANK_FEATURES) & set(PARTNER_FEATURES)


def test_split_sizes_and_exact_overlap(split: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    bank, partner = split
    assert len(bank) == 25_500 and len(partner) == 24_000
    bank_ids = set(bank[ID_COLUMN])
    partner_ids = {normalize_demo_id(s) for s in partner[ID_COLUMN]}
    assert len(bank_ids) == len(bank) and len(partner_ids) == len(partner)  # unique per side
    assert len(bank_ids & partner_ids) == 21_000
    # each side has customers the other lacks
    assert len(bank_ids - partner_ids) == 4_500 and len(partner_ids - bank_ids) == 3_000
    # raw partner IDs match nothing: only the normalisation makes them meet
    assert not bank_ids & set(partner[ID_COLUMN])
    assert all(s.startswith(" c") and s.endswith(" ") and s == s.lower() for s in partner[ID_COLUMN])
    assert all(len(s) == 10 and s[0] == "C" and s[1:].isdigit() for s in bank[ID_COLUMN])


def test_split_rows_are_the_same_people(split: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    """Joining on the normalised ID gives back exactly UCI's rows (values travel with their person)."""
    bank, partner = split
    full = load_taiwan()
    p = partner.assign(**{ID_COLUMN: partner[ID_COLUMN].map(normalize_demo_id)})
    joined = bank.merge(p, on=ID_COLUMN)
    assert len(joined) == 21_000
    cols = [*BANK_FEATURES, *PARTNER_FEATURES, LABEL]
    got = joined[cols].sort_values(cols).reset_index(drop=True)
    # the joined people form a multiset of UCI rows
    merged = got.merge(full[cols].drop_duplicates(), on=cols, how="left", indicator=True)
    assert (merged["_merge"] == "both").all()
    assert 0.2 < joined[LABEL].mean() < 0.24


def test_split_is_deterministic_and_seed_dependent(split: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    bank, partner = split
    bank2, partner2 = split_for_demo(seed=0)
    pd.testing.assert_frame_equal(bank, bank2)
    pd.testing.assert_frame_equal(partner, partner2)
    bank3, _ = split_for_demo(seed=1)
    assert len(set(bank[ID_COLUMN]) & set(bank3[ID_COLUMN])) < 100  # fresh IDs under another seed


def test_rows_are_shuffled_independently(split: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    bank, partner = split
    shared = set(bank[ID_COLUMN]) & {normalize_demo_id(s) for s in partner[ID_COLUMN]}
    bank_order = [s for s in bank[ID_COLUMN] if s in shared]
    partner_order = [normalize_demo_id(s) for s in partner[ID_COLUMN] if normalize_demo_id(s) in shared]
    assert bank_order != partner_order
    # neither table is in UCI order: LIMIT_BAL of UCI's first rows does not lead the bank table
    assert bank["LIMIT_BAL"].head(20).tolist() != load_taiwan()["LIMIT_BAL"].head(20).tolist()


def test_split_on_small_data_and_custom_shares() -> None:
    full = load_taiwan().head(1000)
    bank, partner = split_for_demo(3, bank_share=0.5, partner_share=0.6, overlap=0.2, data=full)
    assert (len(bank), len(partner)) == (500, 600)
    shared = set(bank[ID_COLUMN]) & {normalize_demo_id(s) for s in partner[ID_COLUMN]}
    assert len(shared) == 200


@pytest.mark.parametrize(
    "kwargs",
    [{"overlap": 0.9}, {"bank_share": 0.0}, {"bank_share": 0.9, "partner_share": 0.9, "overlap": 0.5}],
)
def test_split_rejects_impossible_shares(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError, match="split_for_demo"):
        split_for_demo(0, data=load_taiwan().head(10), **kwargs)


def test_write_demo_tables_round_trips(tmp_path: Path, split: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    paths = write_demo_tables(tmp_path / "demo", seed=0)
    assert paths.bank.name == "bank.csv" and paths.partner.name == "partner.csv"
    assert sorted(os.listdir(tmp_path / "demo")) == ["bank.csv", "partner.csv"]  # no temporary files left
    bank, partner = split
    bank_back = pd.read_csv(paths.bank, dtype={ID_COLUMN: str})
    partner_back = pd.read_csv(paths.partner, dtype={ID_COLUMN: str})
    assert bank_back[ID_COLUMN].tolist() == bank[ID_COLUMN].tolist()
    assert partner_back[ID_COLUMN].tolist() == partner[ID_COLUMN].tolist()  # spaces survive
    np.testing.assert_array_equal(bank_back[list(BANK_FEATURES)].to_numpy(), bank[list(BANK_FEATURES)].to_numpy())
    np.testing.assert_array_equal(bank_back[LABEL].to_numpy(), bank[LABEL].to_numpy())
    np.testing.assert_array_equal(
        partner_back[list(PARTNER_FEATURES)].to_numpy(), partner[list(PARTNER_FEATURES)].to_numpy()
    )


def test_write_demo_tables_is_atomic_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "bank.csv").write_text("old bank table\n")

    def broken_to_csv(self: pd.DataFrame, *args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", broken_to_csv)
    with pytest.raises(OSError, match="disk full"):
        write_demo_tables(tmp_path)
    assert (tmp_path / "bank.csv").read_text() == "old bank table\n"
    assert os.listdir(tmp_path) == ["bank.csv"]
