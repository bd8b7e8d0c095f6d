"""The ``secureboost`` and ``evaluate`` steps' parameters: declared once, refused with one path."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from misuan.api import simulate
from misuan.errors import JobSpecError
from misuan.node.steps import STEPS
from misuan.node.steps.evaluate import EvaluateParams
from misuan.node.steps.secureboost import SecureBoostStepParams
from misuan.protocols.secureboost import BoostingParams
from tests.jobfiles import write_job


def _steps(params: str) -> str:
    return f'[[step]]\nkind = "psi"\nparams = {{ reveal = "both" }}\n\n[[step]]\nkind = "secureboost"\nparams = {{ {params} }}\n'


@pytest.mark.parametrize(
    ("params", "field", "problem"),
    [
        ("max_depth = 4.5", "max_depth", "must be an integer from 1 to 16, not 4.5"),
        ("n_estimators = true", "n_estimators", "must be an integer >= 1, not true"),
        ('learning_rate = "0.3"', "learning_rate", "must be a number > 0, not '0.3'"),
        ("max_bin = 300", "max_bin", "must be an integer from 2 to 254, not 300"),
        ("test_fraction = 1.5", "test_fraction", "must be a number >= 0 and < 1, not 1.5"),
        ("split_seed = 1.0", "split_seed", "must be an integer, not 1.0"),
        ('he_scheme = "rsa"', "he_scheme", "must be one of 'ou', 'paillier', not 'rsa'"),
        ("base_score = 1.5", "base_score", "must be a probability in (0, 1) for logistic loss, not 1.5"),
        ("key_bits = 1024", "key_bits", "must be an integer from 2048 to 16384, not 1024"),
        ('prediction_mode = "paths"', "prediction_mode", "must be one of 'leaves', 'nodes', not 'paths'"),
        ("monotone_constraints = { PAY_0 = 2 }", "monotone_constraints", "values must be -1, 0 or 1, not {'PAY_0': 2}"),
        ('monotone_constraints = { PAY_0 = "up" }', "monotone_constraints", "must be a table of integer, not {'PAY_0': 'up'}"),
    ],
)
def test_wrong_params_are_refused_with_their_path_once(tmp_path: Path, params: str, field: str, problem: str) -> None:
    spec = write_job(tmp_path, steps=_steps(params))
    with pytest.raises(JobSpecError) as err:
        simulate(spec, workdir=tmp_path / "w")
    assert str(err.value) == f"step[2] 'secureboost'.params.{field}: {problem}"
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("key", ["objective", "early_stopping_rounds", "trees"])
def test_keys_outside_the_step_are_unknown(tmp_path: Path, key: str) -> None:
    spec = write_job(tmp_path, steps=_steps(f"{key} = 1"))
    with pytest.raises(JobSpecError, match=rf"step\[2\] 'secureboost'\.params: unknown key\(s\) \['{key}'\]"):
        simulate(spec, workdir=tmp_path / "w")


def test_accepted_keys_are_the_boosting_params_and_the_holdout() -> None:
    kind = STEPS["secureboost"]
    assert kind.params == (BoostingParams, SecureBoostStepParams)
    keys = {f.name for cls in kind.params for f in dataclasses.fields(cls)}
    assert keys == {
        "n_estimators", "max_depth", "learning_rate", "reg_lambda", "gamma", "min_child_weight", "subsample",
        "colsample_bytree", "max_bin", "base_score", "first_tree_label_only", "histograms", "he_scheme", "key_bits",
        "frac_bits", "n_jobs", "random_state", "monotone_constraints", "prediction_mode", "test_fraction", "split_seed",
    }
    assert STEPS["evaluate"].params == (EvaluateParams,)
    assert [kind.protocols[0].name, STEPS["evaluate"].protocols[0].name] == ["secureboost", "secureboost"]


def test_evaluate_refuses_a_model_step_that_is_not_text(tmp_path: Path) -> None:
    steps = _steps("n_estimators = 1") + '\n[[step]]\nkind = "evaluate"\nparams = { model_step = 3 }\n'
    spec = write_job(tmp_path, steps=steps)
    with pytest.raises(JobSpecError, match=r"^step\[3\] 'evaluate'\.params\.model_step: must be text, not 3$"):
        simulate(spec, workdir=tmp_path / "w")
