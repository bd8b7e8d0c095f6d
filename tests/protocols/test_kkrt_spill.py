"""KKRT-PSI over spilled buckets: the in-memory result, and a run killed part-way resumes per bucket."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

import misuan.protocols.kkrt as kkrt
from misuan.errors import DuplicateIdError
from misuan.net.local import run_local
from misuan.protocols.kkrt.spill import kkrt_psi_spilled

PARTIES = ("bank", "partner")
NORM = "test-normalisation"


def _ids() -> dict[str, list[bytes]]:
    rng = np.random.default_rng(3)
    pool = [f"id-{v}".encode() for v in rng.choice(10**9, 1500, replace=False)]
    return {"bank": pool[:900], "partner": pool[600:]}  # 300 shared


def _chunks(values: list[bytes], reads: list[int], size: int = 128) -> Callable[[], Iterator[list[bytes]]]:
    def gen() -> Iterator[list[bytes]]:
        reads.append(1)
        for a in range(0, len(values), size):
            yield values[a : a + size]
    return gen


def _run(tmp: Path, ids: dict[str, list[bytes]], reveal: str, reads: dict[str, list[int]],
         stop: dict[str, int] | None = None, seen: dict[str, list[int]] | None = None) -> dict:
    def fn(p: str) -> Callable:
        def hook(b: int) -> None:
            if seen is not None:
                seen[p].append(b)
            if stop and stop.get(p) == b:
                raise RuntimeError(f"{p} stopped after bucket {b}")
        peer = "partner" if p == "bank" else "bank"
        return lambda c: kkrt_psi_spilled(c, _chunks(ids[p], reads[p]), len(ids[p]), peer, tmp / p, reveal=reveal,
                                          normalization=NORM, on_bucket=hook)
    return run_local({p: fn(p) for p in PARTIES}, job_id="spill")


@pytest.mark.parametrize("reveal", ["both", "bank"])
def test_spilled_buckets_give_the_in_memory_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reveal: str) -> None:
    monkeypatch.setattr(kkrt, "BUCKET_ITEMS", 256)  # 4 buckets
    ids = _ids()
    reads: dict[str, list[int]] = {p: [] for p in PARTIES}
    out = _run(tmp_path, ids, reveal, reads)
    ref = run_local({p: (lambda c, p=p: kkrt.kkrt_psi(c, kkrt.encode_ids(ids[p]), "partner" if p == "bank" else "bank",
                                                        reveal=reveal, normalization=NORM)) for p in PARTIES})
    shared = set(ids["bank"]) & set(ids["partner"])
    for p in PARTIES:
        got = out[p].result
        if reveal == "both" or p == reveal:
            # the same rows (their order follows the digests, keyed by each run's nonces)
            assert np.array_equal(np.sort(got.local_rows), np.sort(ref[p].result.local_rows))
            assert {ids[p][r] for r in got.local_rows} == shared
        else:
            assert got.local_rows is None
        assert not (tmp_path / p / "kkrt-spill").exists()  # the spill is removed once the run completes
    assert [e.what for e in out["bank"].disclosures].count("number of IDs in its set") == 2
    if reveal == "both":  # both list the shared customers in the same order
        rows = {p: out[p].result.local_rows for p in PARTIES}
        assert [ids["bank"][r] for r in rows["bank"]] == [ids["partner"][r] for r in rows["partner"]]


def test_a_killed_run_resumes_per_bucket_without_reading_the_ids_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kkrt, "BUCKET_ITEMS", 256)
    ids = _ids()
    reads: dict[str, list[int]] = {p: [] for p in PARTIES}
    seen: dict[str, list[int]] = {p: [] for p in PARTIES}
    with pytest.raises(Exception, match="stopped after bucket 1"):
        _run(tmp_path, ids, "both", reads, stop={"partner": 1}, seen=seen)
    assert seen["partner"] == [0, 1] and (tmp_path / "partner" / "kkrt-spill" / "state.json").exists()
    seen = {p: [] for p in PARTIES}
    out = _run(tmp_path, ids, "both", reads, seen=seen)
    assert reads == {"bank": [1], "partner": [1]}  # the resumed run read its buckets from disk, not the IDs
    assert seen["bank"] == seen["partner"] and seen["bank"][0] >= 1 and 0 not in seen["bank"]  # done by both: skipped
    shared = set(ids["bank"]) & set(ids["partner"])
    for p in PARTIES:
        assert {ids[p][r] for r in out[p].result.local_rows} == shared
        resumed = [e for e in out[p].disclosures if e.what.startswith("buckets its kept run")]
        assert sorted(e.recipient for e in resumed) == sorted(PARTIES)  # what it told, what it heard


def test_one_side_without_its_work_directory_starts_both_afresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kkrt, "BUCKET_ITEMS", 256)
    ids = _ids()
    reads: dict[str, list[int]] = {p: [] for p in PARTIES}
    with pytest.raises(Exception, match="stopped"):
        _run(tmp_path, ids, "both", reads, stop={"bank": 0})
    import shutil

    shutil.rmtree(tmp_path / "partner" / "kkrt-spill")
    out = _run(tmp_path, ids, "both", reads)
    assert reads == {"bank": [1, 1], "partner": [1, 1]}
    assert len(out["bank"].result.local_rows) == 300


def test_a_repeated_id_is_refused(tmp_path: Path) -> None:
    ids = _ids()
    ids["bank"] = ids["bank"] + [ids["bank"][5]]
    reads: dict[str, list[int]] = {p: [] for p in PARTIES}
    with pytest.raises(DuplicateIdError, match="repeats after normalisation"):
        _run(tmp_path, ids, "both", reads)
