"""The ``woe`` step's parameters: declared once (``WoeParams`` + ``WoeStepParams``), refused with one path, documented from the declaration."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from misuan.api import simulate
from misuan.errors import JobSpecError
from misuan.node.steps import STEPS
from misuan.node.steps.woe import WoeStepParams
from misuan.protocols.woe import WoeParams
from tests.jobfiles import write_job

WOE_STEP_MD = Path(__file__).resolve().parents[2] / "docs" / "woe_step.md"


def _steps(params: str) -> str:
    return f'[[step]]\nkind = "psi"\nparams = {{ reveal = "both" }}\n\n[[step]]\nkind = "woe"\nparams = {{ {params} }}\n'


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ("n_bins = 10.5", "must be an integer from 1 to 1000, not 10.5"),
        ("n_bins = true", "must be an integer from 1 to 1000, not true"),
        ('n_bins = "10"', "must be an integer from 1 to 1000, not '10'"),
    ],
)
def test_wrong_type_n_bins_is_refused_with_its_path_once(tmp_path: Path, params: str, problem: str) -> None:
    spec = write_job(tmp_path, steps=_steps(params))
    with pytest.raises(JobSpecError) as err:
        simulate(spec, workdir=tmp_path / "w")
    assert str(err.value) == f"step[2] 'woe'.params.n_bins: {problem}"
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ('scheme = "rsa"', "scheme"),
        ("key_bits = 512", "key_bits"),
        ("include_own = 1", "include_own"),
        ('method = "magic"', "method"),
        ('methods = { score = "kmeans" }', "methods"),
        ("n_bins = 20, n_prebins = 10", "n_prebins"),
        ("min_bin_size = 0", "min_bin_size"),
        ("workers = 0", "workers"),
    ],
)
def test_bad_values_name_the_field(tmp_path: Path, params: str, field: str) -> None:
    spec = write_job(tmp_path, steps=_steps(params))
    with pytest.raises(JobSpecError, match=rf"^step\[2\] 'woe'\.params\.{field}: ") as err:
        simulate(spec, workdir=tmp_path / "w")
    assert "params.params" not in str(err.value)


def test_unknown_key_lists_the_accepted_keys(tmp_path: Path) -> None:
    spec = write_job(tmp_path, steps=_steps("bins = 5"))
    with pytest.raises(JobSpecError, match=r"step\[2\] 'woe'\.params: unknown key\(s\) \['bins'\]"):
        simulate(spec, workdir=tmp_path / "w")


def test_accepted_keys_are_the_protocols_and_the_steps() -> None:
    kind = STEPS["woe"]
    assert kind.params == (WoeParams, WoeStepParams)
    keys = {f.name for cls in kind.params for f in dataclasses.fields(cls)}
    assert keys == {
        "method", "methods", "n_bins", "n_prebins", "min_bin_size", "smoothing", "chi2_threshold",
        "share_edges", "share_iv", "min_key_bits", "workers", "scheme", "key_bits", "include_own",
    }


def test_fingerprint_leaves_out_each_partys_own_choices() -> None:
    base = WoeParams()
    assert WoeParams(workers=2, min_key_bits=3072).fingerprint() == base.fingerprint()
    assert WoeParams(n_bins=5).fingerprint() != base.fingerprint()
    assert WoeParams(methods={"b": "tree", "a": "chimerge"}).fingerprint() == WoeParams(
        methods={"a": "chimerge", "b": "tree"}
    ).fingerprint()


def test_a_key_below_min_key_bits_is_refused_before_psi(tmp_path: Path) -> None:
    """The feature party would refuse the label party's key after PSI; the spec says so up front."""
    spec = write_job(tmp_path, steps=_steps("key_bits = 2048, min_key_bits = 3072"))
    with pytest.raises(JobSpecError) as err:
        simulate(spec, workdir=tmp_path / "w")
    assert str(err.value) == "step[2] 'woe'.params.key_bits: must be at least min_key_bits (3072), not 2048"
    assert not (tmp_path / "w").exists()
