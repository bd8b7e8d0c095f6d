"""A streamed dataset (``stream = true``): checked chunk by chunk into columns on disk, equal to the in-memory one."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from misuan.errors import DataError, DuplicateIdError, EmptyIdError, MissingColumnError
from misuan.node.column_store import FeatureColumns, build_column_store
from misuan.node.data import check_dataset
from misuan.node.sources import SourceSpec
from misuan.node.spec import DatasetSpec
from misuan.protocols.secureboost.binning import binned_features
from misuan.protocols.woe.binning import iter_float_columns


def _frame(n: int = 200, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    income = rng.normal(5000, 900, n).round(2)
    income[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame({
        "customer_id": [f"c{i:05d}" for i in range(n)],
        "income": income,
        "age": rng.integers(21, 70, n),
        "default": rng.integers(0, 2, n),
    })


def _two_party_spec(tmp_path: Path, bank_ds: str, partner_ds: str, steps: str) -> Path:
    path = tmp_path / "job.toml"
    path.write_text(textwrap.dedent(f"""\
        version = 1
        [job]
        id = "j"
        [[party]]
        name = "bank"
        role = "label_party"
        address = "127.0.0.1:7001"
        dataset = {{ {bank_ds}, id_column = "id", label_column = "y" }}
        [[party]]
        name = "partner"
        role = "feature_party"
        address = "127.0.0.1:7002"
        dataset = {{ {partner_ds}, id_column = "id" }}
        """) + textwrap.dedent(steps))
    return path


def _build(path: Path, chunk_rows: int = 7, directory: Path | None = None, **kw: object):
    return build_column_store(SourceSpec("csv", path=path), "bank's dataset t.csv", "customer_id", "default",
                              kw.get("features", "all"), chunk_rows=chunk_rows, directory=directory)  # type: ignore[arg-type]


def test_the_streamed_dataset_equals_the_in_memory_one(tmp_path: Path) -> None:
    df = _frame()
    df.to_csv(tmp_path / "t.csv", index=False)
    memory = check_dataset(DatasetSpec(tmp_path / "t.csv", "customer_id", "default", "all"), "bank")
    streamed = check_dataset(DatasetSpec(tmp_path / "t.csv", "customer_id", "default", "all", stream=True), "bank")
    assert streamed.store is not None and streamed.table is None
    assert streamed.features == memory.features == ("income", "age")
    assert streamed.fingerprint == memory.fingerprint and streamed.n_rows == len(df)
    pd.testing.assert_series_equal(streamed.ids(), memory.ids(), check_names=False)
    np.testing.assert_array_equal(streamed.labels(), memory.labels())
    rows = np.array([5, 0, 199, 17])
    cols = FeatureColumns(streamed.store, ["income", "age"], rows)
    for name in ("income", "age"):
        np.testing.assert_array_equal(cols[name], memory.frame[name].to_numpy(dtype=float)[rows])
    # every step that does not stream still gets the whole table (read from the store on first use)
    whole = streamed.frame
    pd.testing.assert_frame_equal(whole, memory.frame[list(whole.columns)].astype({"age": float}), check_dtype=False)
    chunks = list(streamed.store.iter_ids(chunk_rows=64))
    assert [len(c) for c in chunks] == [64, 64, 64, 8]
    assert pd.concat(chunks, ignore_index=True).tolist() == df["customer_id"].tolist()


def test_column_by_column_binning_equals_the_matrix_binning(tmp_path: Path) -> None:
    df = _frame(500)
    df.to_csv(tmp_path / "t.csv", index=False)
    check = _build(tmp_path / "t.csv")
    cols = FeatureColumns(check.store, list(check.features), np.arange(500)[::-1])
    lazy, codes, names = binned_features(cols, 16)
    matrix = df[["income", "age"]].iloc[::-1].astype(float)
    eager, want, want_names = binned_features(matrix, 16)
    assert names == want_names
    np.testing.assert_array_equal(codes, want)
    for a, b in zip(lazy.cuts, eager.cuts, strict=True):
        np.testing.assert_array_equal(a, b)
    assert [n for n, _ in iter_float_columns(cols)] == ["income", "age"]


def test_errors_name_the_rows_and_leave_no_directory(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()

    def refuse(df: pd.DataFrame, error: type[Exception], match: str, **kw: object) -> None:
        df.to_csv(tmp_path / "t.csv", index=False)
        with pytest.raises(error, match=match):
            _build(tmp_path / "t.csv", directory=work, **kw)
        assert not list(work.iterdir())  # nothing left half-written

    df = _frame(30)
    bad = df.copy()
    bad.loc[12, "customer_id"] = " "
    refuse(bad, EmptyIdError, r"empty on file line\(s\) 14")
    bad = df.copy()
    bad.loc[25, "customer_id"] = "c00003"  # a repeat in another chunk
    refuse(bad, DuplicateIdError, r"repeats 1 id\(s\), e.g. \['c00003'\], on file line\(s\) 5, 27")
    bad = df.copy()
    bad["default"] = bad["default"].astype(object)
    bad.loc[20, "default"] = "yes"
    refuse(bad, DataError, r"must be 0 or 1 on every row; it is not on file line\(s\) 22")
    bad = df.copy()
    bad["age"] = bad["age"].astype(object)
    bad.loc[16, "age"] = "unknown"
    refuse(bad, DataError, r"feature column 'age' is not numeric: it holds 'unknown' on file line\(s\) 18")
    refuse(df, MissingColumnError, "no feature column 'score'", features=("income", "score"))
    df.iloc[:0].to_csv(tmp_path / "t.csv", index=False)
    refuse(df.iloc[:0], DataError, "has no data rows")


def test_the_store_removes_its_directory_when_closed(tmp_path: Path) -> None:
    _frame(20).to_csv(tmp_path / "t.csv", index=False)
    check = _build(tmp_path / "t.csv", directory=tmp_path)
    root = check.store.root
    assert root.is_dir() and oct(root.stat().st_mode & 0o777) == "0o700"
    check.store.close()
    assert not root.exists()


def test_the_spec_key_stream_is_a_boolean(tmp_path: Path) -> None:
    from misuan.errors import JobSpecError
    from misuan.node.dataset_spec import parse_dataset

    raw = {"dataset": {"path": "t.csv", "id_column": "id", "stream": True}}
    assert parse_dataset(raw, "party[1]", "feature_party", tmp_path).stream is True
    with pytest.raises(JobSpecError, match=r"party\[1\].dataset.stream: write true"):
        parse_dataset({"dataset": {"path": "t.csv", "id_column": "id", "stream": "yes"}}, "party[1]", "feature_party", tmp_path)


def test_ids_that_pandas_reads_as_missing_are_ids_as_in_memory(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("customer_id,income,default\nNA,1.5,0\nnull,NA,1\n007,,0\n")
    spec = DatasetSpec(tmp_path / "t.csv", "customer_id", "default", "all")
    memory = check_dataset(spec, "bank")
    streamed = check_dataset(dataclasses.replace(spec, stream=True), "bank")
    assert streamed.ids().tolist() == memory.ids().tolist() == ["NA", "null", "007"]
    np.testing.assert_array_equal(streamed.store.column("income"), [1.5, np.nan, np.nan])


def test_the_psi_check_of_a_streamed_dataset_names_ids_that_normalise_to_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from misuan.node import column_store
    from misuan.node.runner import check_runnable
    from misuan.node.spec import load_spec

    monkeypatch.setattr(column_store, "_CHECK_BUCKET_ROWS", 10_000)  # the distinctness checks over 15 buckets

    rows = [f"c{i:05d}" for i in range(150_000)]
    rows[140_001] = "C00007"  # the same customer as row 8 once case-folded, in another chunk
    pd.DataFrame({"id": rows, "y": [0, 1] * 75_000}).to_csv(tmp_path / "bank.csv", index=False)
    pd.DataFrame({"id": rows[:10]}).to_csv(tmp_path / "partner.csv", index=False)
    spec = load_spec(_two_party_spec(tmp_path, 'path = "bank.csv", stream = true', 'path = "partner.csv", stream = true',
                                     '[[step]]\nkind = "psi"\nparams = { reveal = "both", normalize = { case = "casefold" } }\n'))
    with pytest.raises(DuplicateIdError, match=r"\['c00007', 'C00007'\] -> 'c00007', on file lines 9, 140003"):
        check_runnable(spec, "bank")
    assert check_runnable(spec, "partner").dataset.store is not None


def test_spilled_psi_runs_whichever_party_streams_and_steps_that_need_more_columns_are_refused(tmp_path: Path) -> None:
    import misuan.api as ms
    from misuan.errors import JobSpecError
    from misuan.node.runner import check_runnable
    from misuan.node.spec import load_spec

    rng = np.random.default_rng(2)
    ids = [f"k{i:05d}" for i in range(3000)]
    pd.DataFrame({"id": ids, "y": rng.integers(0, 2, 3000), "x": rng.normal(size=3000)}).to_csv(tmp_path / "b.csv", index=False)
    pd.DataFrame({"id": ids[1000:] + ["z1", "z2"], "v": rng.normal(size=2002)}).to_csv(tmp_path / "p.csv", index=False)
    psi = '[[step]]\nkind = "psi"\nparams = { reveal = "both", spill = true }\n'
    spec = _two_party_spec(tmp_path, 'path = "b.csv", stream = true', 'path = "p.csv"', psi)  # only the bank streams
    result = ms.simulate(spec, workdir=tmp_path / "w")
    assert result.outputs("bank")["psi"]["size"] == result.outputs("partner")["psi"]["size"] == 2000
    for party in ("bank", "partner"):
        assert not list((tmp_path / "w" / party / "jobs" / "j" / "work").glob("*/*"))  # spilled buckets removed
        assert not list((tmp_path / "w" / party).glob("scratch/misuan-columns-*"))
    summed = _two_party_spec(tmp_path, 'path = "b.csv", stream = true', 'path = "p.csv"',
                             psi + '[[step]]\nkind = "secure_sum"\nparams = { columns = ["x"] }\n')
    with pytest.raises(JobSpecError, match=r"step\[2\] 'secure_sum' \(secure_sum\) reads columns of bank's dataset beyond"):
        check_runnable(load_spec(summed), "bank")
    ecdh = _two_party_spec(tmp_path, 'path = "b.csv"', 'path = "p.csv"',
                           '[[step]]\nkind = "psi"\nparams = { reveal = "size", spill = true }\n')
    with pytest.raises(JobSpecError, match="params.spill: spilled buckets are KKRT-PSI's"):
        check_runnable(load_spec(ecdh), "bank")


def test_a_streamed_csv_with_a_repeated_header_is_refused(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("customer_id,x,x,default\na,1,2,0\n")
    spec = DatasetSpec(tmp_path / "t.csv", "customer_id", "default", "all", stream=True)
    with pytest.raises(DataError, match=r"column 'x' appears more than once in the header \(line 1, columns 2, 3\)"):
        check_dataset(spec, "bank")


def test_a_killed_spilled_psi_step_resumes_per_bucket_when_the_job_is_resumed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import misuan.api as ms
    import misuan.protocols.kkrt as kkrt
    from misuan.protocols.kkrt import spill

    monkeypatch.setattr(kkrt, "BUCKET_ITEMS", 256)  # several buckets for a few thousand IDs
    rng = np.random.default_rng(4)
    ids = [f"q{v:08d}" for v in rng.choice(10**8, 2600, replace=False)]
    pd.DataFrame({"id": ids[:1500], "y": rng.integers(0, 2, 1500)}).to_csv(tmp_path / "b.csv", index=False)
    pd.DataFrame({"id": ids[900:]}).to_csv(tmp_path / "p.csv", index=False)
    spec = _two_party_spec(tmp_path, 'path = "b.csv", stream = true', 'path = "p.csv", stream = true',
                           '[[step]]\nkind = "psi"\nparams = { reveal = "both", spill = true }\n')
    saved: dict[str, list[str]] = {"bank": [], "partner": []}
    write = spill.write_atomic

    def killing(path: Path, data: bytes) -> None:
        party = "partner" if "/partner/" in str(path) else "bank"
        if path.name.startswith("shared-"):
            if kill_after is not None and party == "partner" and len(saved[party]) == kill_after:
                raise RuntimeError("partner killed")
            saved[party].append(path.name)
        write(path, data)

    monkeypatch.setattr(spill, "write_atomic", killing)
    kill_after: int | None = 2
    with pytest.raises(Exception, match="partner killed"):
        ms.simulate(spec, workdir=tmp_path / "w")
    assert len(saved["partner"]) == 2
    kill_after, saved = None, {"bank": [], "partner": []}
    resumed = ms.simulate(spec, workdir=tmp_path / "w", resume=True)
    n_buckets = kkrt.buckets_for(1700)
    assert len(saved["partner"]) == n_buckets - 2  # the two finished buckets were not run again
    assert resumed.outputs("bank")["psi"]["size"] == resumed.outputs("partner")["psi"]["size"] == 600
    rows = {p: np.load(tmp_path / "w" / p / "jobs" / "j" / "artefacts" / "psi" / "rows.npy") for p in ("bank", "partner")}
    bank, partner = pd.read_csv(tmp_path / "b.csv", dtype=str), pd.read_csv(tmp_path / "p.csv", dtype=str)
    assert bank["id"].iloc[rows["bank"]].tolist() == partner["id"].iloc[rows["partner"]].tolist()
    assert set(bank["id"].iloc[rows["bank"]]) == set(ids[900:1500])
    # killed again, then run without --resume: the kept buckets are removed, every bucket runs afresh
    kill_after, saved = 2, {"bank": [], "partner": []}
    with pytest.raises(Exception, match="partner killed"):
        ms.simulate(spec, workdir=tmp_path / "w2")
    kill_after, saved = None, {"bank": [], "partner": []}
    ms.simulate(spec, workdir=tmp_path / "w2")
    assert len(saved["partner"]) == n_buckets
