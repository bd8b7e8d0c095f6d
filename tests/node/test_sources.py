"""Dataset sources: Parquet and Arrow files and a real PostgreSQL server give what the CSV gives.

The PostgreSQL tests start a throwaway server (Debian's ``postgresql`` package, which ``.ci/run``
installs) on a Unix socket in a temporary directory, as the ``postgres`` user when run as root.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import misuan.api as ms
from bench.pg_server import pg_bindir, postgres_server
from misuan.datasets.taiwan import load_taiwan
from misuan.errors import DataError, JobSpecError
from misuan.node.data import check_dataset
from misuan.node.sources import SourceSpec, iter_frames, read_frame, redacted_url
from misuan.node.spec import DatasetSpec, loads_spec

pa = pytest.importorskip("pyarrow")
import pyarrow.feather  # noqa: E402, F401  (pa.feather)
import pyarrow.parquet  # noqa: E402, F401  (pa.parquet)


def _frame(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "customer_id": [f"c{i:05d}" for i in range(n)],
        "income": rng.normal(5000, 900, n).round(2),
        "age": rng.integers(21, 70, n).astype(float),
        "default": rng.integers(0, 2, n),
    })


def _write_all(df: pd.DataFrame, d: Path) -> dict[str, Path]:
    paths = {"csv": d / "t.csv", "parquet": d / "t.parquet", "arrow": d / "t.arrow", "feather": d / "t.feather"}
    df.to_csv(paths["csv"], index=False)
    table = pa.Table.from_pandas(df, preserve_index=False)
    pa.parquet.write_table(table, paths["parquet"], row_group_size=64)
    pa.feather.write_feather(table, paths["arrow"], chunksize=50)
    pa.feather.write_feather(table, paths["feather"])
    return paths


def _checked(path: Path, **kw: Any):
    return check_dataset(DatasetSpec(path, "customer_id", "default", "all", **kw), "bank")


def test_parquet_and_arrow_files_check_to_the_same_frame_as_csv(tmp_path: Path) -> None:
    df = _frame()
    df.loc[5, "income"] = np.nan
    paths = _write_all(df, tmp_path)
    ref = _checked(paths["csv"])
    for kind in ("parquet", "arrow", "feather"):
        got = _checked(paths[kind])
        pd.testing.assert_frame_equal(got.frame, ref.frame, check_dtype=False)
        assert got.features == ref.features == ("income", "age")
        assert got.fingerprint.startswith("sha256:") and got.fingerprint != ref.fingerprint


@pytest.mark.parametrize("kind", ["csv", "parquet", "arrow"])
def test_chunks_are_bounded_and_add_up_to_the_whole(tmp_path: Path, kind: str) -> None:
    paths = _write_all(_frame(), tmp_path)
    src = DatasetSpec(paths[kind], "customer_id", "default", "all").source
    chunks = list(iter_frames(src, chunk_rows=37, id_column="customer_id"))
    assert max(len(c) for c in chunks) <= 37 and sum(len(c) for c in chunks) == 300
    whole = pd.concat(chunks, ignore_index=True)
    assert whole["customer_id"].tolist() == _frame()["customer_id"].tolist()
    assert list(iter_frames(src, columns=["age"], chunk_rows=100))[0].columns.tolist() == ["age"]


def test_numeric_ids_become_text_and_errors_name_rows(tmp_path: Path) -> None:
    df = _frame(20)
    df["customer_id"] = np.arange(100, 120)
    df.loc[3, "default"] = 7
    pa.parquet.write_table(pa.Table.from_pandas(df, preserve_index=False), tmp_path / "n.parquet")
    with pytest.raises(DataError, match=r"bank's dataset n.parquet: label column 'default' must be 0 or 1 on every row; "
                                        r"it is not on row\(s\) 4 \(values \['7'\]\)"):
        _checked(tmp_path / "n.parquet")
    df.loc[3, "default"] = 1
    pa.parquet.write_table(pa.Table.from_pandas(df, preserve_index=False), tmp_path / "n.parquet")
    assert _checked(tmp_path / "n.parquet").frame["customer_id"].tolist()[:2] == ["100", "101"]
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match="bad.parquet is not a readable parquet file"):
        _checked(tmp_path / "bad.parquet")


def _spec_text(bank_ds: str, partner_ds: str, id_column: str, label: str, job: str = "j",
               steps: str = '[[step]]\nkind = "psi"\n') -> str:
    """A two-party job spec whose parties' datasets are the given TOML fields."""
    return textwrap.dedent(f"""\
        version = 1
        [job]
        id = "{job}"
        [[party]]
        name = "bank"
        role = "label_party"
        address = "127.0.0.1:7001"
        dataset = {{ {bank_ds}, id_column = "{id_column}", label_column = "{label}" }}
        [[party]]
        name = "partner"
        role = "feature_party"
        address = "127.0.0.1:7002"
        dataset = {{ {partner_ds}, id_column = "{id_column}" }}
        """) + textwrap.dedent(steps)


def test_spec_names_a_file_or_a_database(tmp_path: Path) -> None:
    def spec(dataset: str) -> str:
        return _spec_text(dataset, 'path = "p.parquet"', "id", "y")

    ok = loads_spec(spec('postgres = "postgresql://risk@db/wh", table = "scoring.customers"'), tmp_path)
    ds = ok.party("bank").dataset
    assert ds is not None and ds.path is None and ds.source == SourceSpec("postgres", url="postgresql://risk@db/wh",
                                                                          table="scoring.customers")
    assert ok.party("partner").dataset.source.kind == "parquet"  # type: ignore[union-attr]
    for bad, msg in [
        ('postgres = "postgresql://risk:secret@db/wh", table = "t"', "no password in the job spec"),
        ('postgres = "postgresql://risk@db/wh?sslmode=require&password=secret", table = "t"', "no password"),
        ('postgres = "postgresql://db/wh"', "name exactly one of table"),
        ('postgres = "postgresql://db/wh", table = "t", query = "SELECT 1"', "name exactly one of table"),
        ('postgres = "postgresql://db/wh", table = "t; DROP TABLE x"', "write a table name"),
        ('path = "b.csv", postgres = "postgresql://db/wh"', "not both"),
        ('path = "b.csv", table = "t"', "needs postgres"),
        ('postgres = "mysql://db/wh", table = "t"', "write a connection URL"),
    ]:
        with pytest.raises(JobSpecError, match=msg):
            loads_spec(spec(bad), tmp_path)
    assert redacted_url("postgresql://risk:secret@db:5432/wh") == "postgresql://risk:***@db:5432/wh"
    assert redacted_url("postgresql://risk@db/wh?password=s&host=x") == "postgresql://risk@db/wh?password=***&host=x"


# --- a real PostgreSQL server ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    if pg_bindir() is None:
        pytest.skip("PostgreSQL's server programs are not installed (.ci/run installs Debian's postgresql)")
    with postgres_server() as url:
        yield url


def _load(url: str, name: str, df: pd.DataFrame) -> None:
    import psycopg

    types = {"O": "text", "f": "double precision", "i": "bigint"}
    cols = ", ".join(f'"{c}" {types[df[c].dtype.kind]}' for c in df.columns)
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.execute(f'DROP TABLE IF EXISTS {name}; CREATE TABLE {name} ({cols})')
        with cur.copy(f"COPY {name} FROM STDIN") as copy:
            for row in df.itertuples(index=False):
                copy.write_row([None if isinstance(v, float) and np.isnan(v) else v for v in row])


def test_a_postgres_table_and_query_check_to_the_same_frame_as_csv(postgres_url: str, tmp_path: Path) -> None:
    df = _frame()
    df.loc[7, "age"] = np.nan
    _load(postgres_url, "customers", df)
    ref = _checked(_write_all(df, tmp_path)["csv"])
    table = check_dataset(DatasetSpec(None, "customer_id", "default", "all", postgres_url, table="customers"), "bank")
    pd.testing.assert_frame_equal(table.frame, ref.frame, check_dtype=False)
    assert table.fingerprint.startswith("rows-sha256:")
    query = DatasetSpec(None, "customer_id", "default", ("income",), postgres_url,
                        query="SELECT customer_id, income::numeric(12,2) AS income, \"default\" FROM customers ORDER BY customer_id")
    got = check_dataset(query, "bank")
    assert got.frame["income"].dtype == np.float64  # numeric arrives as Decimal: read as float64
    assert got.frame["income"].tolist() == ref.frame["income"].tolist()
    assert got.fingerprint == check_dataset(query, "bank").fingerprint  # same rows, same order: same fingerprint
    chunks = list(iter_frames(query.source, chunk_rows=64, id_column="customer_id"))
    assert [len(c) for c in chunks] == [64, 64, 64, 64, 44]


def test_postgres_queries_run_read_only_and_errors_name_the_source(postgres_url: str) -> None:
    import psycopg

    _load(postgres_url, "victims", _frame(5))
    with psycopg.connect(postgres_url) as conn:
        conn.execute("DROP SEQUENCE IF EXISTS ticket; CREATE SEQUENCE ticket")
    # a statement that is not a query cannot even be opened as the server-side cursor
    with pytest.raises(DataError, match=r"postgres query at postgresql://misuan@/postgres.*syntax error"):
        read_frame(SourceSpec("postgres", url=postgres_url, query="DELETE FROM victims RETURNING *"), "customer_id")
    # and a query that would write through a function runs in a read-only transaction
    writes = SourceSpec("postgres", url=postgres_url, query="SELECT v.*, nextval('ticket') AS t FROM victims v")
    with pytest.raises(DataError, match=r"cannot execute nextval\(\) in a read-only transaction"):
        read_frame(writes, "customer_id")
    assert len(read_frame(SourceSpec("postgres", url=postgres_url, table="victims"), "customer_id")[0]) == 5
    with pytest.raises(DataError, match="postgres table nowhere .*does not exist"):
        read_frame(SourceSpec("postgres", url=postgres_url, table="nowhere"), "customer_id")


def test_a_job_from_postgres_and_parquet_equals_the_job_from_csv(postgres_url: str, tmp_path: Path) -> None:
    data = load_taiwan(verify=False).head(1500).copy()
    data["ID"] = data["ID"].astype(str)
    bank = data[["ID", "LIMIT_BAL", "AGE", "PAY_0", "default"]].iloc[:1200]
    partner = data[["ID", "BILL_AMT1", "PAY_AMT1", "PAY_AMT2"]].iloc[300:]
    bank.to_csv(tmp_path / "bank.csv", index=False)
    partner.to_csv(tmp_path / "partner.csv", index=False)
    _load(postgres_url, "bank_customers", bank.astype({"LIMIT_BAL": float, "AGE": float, "PAY_0": float}))
    pa.parquet.write_table(pa.Table.from_pandas(partner, preserve_index=False), tmp_path / "partner.parquet")
    steps = """
        [[step]]
        kind = "psi"
        params = { reveal = "both" }
        [[step]]
        kind = "woe"
        params = { n_bins = 4, min_bin_size = 20, key_bits = 1024, min_key_bits = 1024, workers = 1 }
        [[step]]
        kind = "secureboost"
        params = { n_estimators = 2, max_depth = 2, test_fraction = 0.25, n_jobs = 1 }
        """

    def job(bank_ds: str, partner_ds: str, name: str) -> Path:
        path = tmp_path / f"{name}.toml"
        path.write_text(_spec_text(bank_ds, partner_ds, "ID", "default", name, steps))
        return path

    from_csv = ms.simulate(job('path = "bank.csv"', 'path = "partner.csv"', "csv"), workdir=tmp_path / "w1")
    url = postgres_url.replace('"', '\\"')
    from_db = ms.simulate(job(f'postgres = "{url}", table = "bank_customers"', 'path = "partner.parquet"', "db"),
                          workdir=tmp_path / "w2")

    def stable(x: Any) -> Any:  # the outputs without timings; floats to 10 digits (sums in another order)
        if isinstance(x, dict):
            return {k: stable(v) for k, v in x.items() if k not in ("seconds", "history", "timings")}
        if isinstance(x, float):
            return float(f"{x:.10g}")
        return [stable(v) for v in x] if isinstance(x, list) else x

    # streamed (stream = true): columns on disk, PSI over spilled buckets, WOE and SecureBoost a column at a time
    steps = steps.replace('params = { reveal = "both" }', 'params = { reveal = "both", spill = true }')
    streamed = ms.simulate(job(f'postgres = "{url}", table = "bank_customers", stream = true',
                               'path = "partner.parquet", stream = true', "streamed"), workdir=tmp_path / "w3")
    for party in ("bank", "partner"):
        want = stable(from_csv.outputs(party))
        for run in (from_db, streamed):
            got = stable(run.outputs(party))
            for step in want:
                assert got[step] == want[step], (party, step, {k: (got[step].get(k), v) for k, v in want[step].items() if got[step].get(k) != v})
    # the same trees on the same customers: splits equal, gains and leaves to the last bits (PSI's row
    # order differs when streamed, bucket by bucket, so the label party's float sums add in another order)
    for party in ("bank", "partner"):
        models = [json.loads((w / party / "jobs" / n / "artefacts" / "secureboost" / "model.json").read_text())
                  for w, n in ((tmp_path / "w1", "csv"), (tmp_path / "w3", "streamed"))]
        assert stable(models[0]) == stable(models[1])
    assert not list((tmp_path / "w3").glob("*/jobs/streamed/work/*/*"))  # the spilled buckets are gone
