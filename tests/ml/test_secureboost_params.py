"""The estimators' hyperparameters are SecureBoostParams' fields (one declaration), checked at fit."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from misuan.errors import ConfigError
from misuan.ml.secureboost import SecureBoostClassifier, SecureBoostRegressor
from misuan.params import ParamError
from misuan.protocols.secureboost import SecureBoostParams


@pytest.mark.parametrize("cls", [SecureBoostClassifier, SecureBoostRegressor])
def test_signature_is_the_params_declaration_without_the_objective(cls: type) -> None:
    declared = [
        (f.name, f.default_factory() if f.default is dataclasses.MISSING else f.default)  # type: ignore[misc]
        for f in dataclasses.fields(SecureBoostParams)
        if f.name != "objective"
    ]
    shown = [(p.name, p.default) for p in inspect.signature(cls).parameters.values()]
    assert shown == declared
    assert cls().get_params() == dict(declared)
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in inspect.signature(cls).parameters.values())


def test_constructor_and_set_params_refuse_unknown_names() -> None:
    with pytest.raises(TypeError, match="'trees'"):
        SecureBoostClassifier(trees=5)
    with pytest.raises(ConfigError, match="'trees'"):
        SecureBoostClassifier().set_params(trees=5)


def test_values_are_checked_by_the_params_with_the_estimators_objective() -> None:
    est = SecureBoostClassifier(max_depth=4.5)  # stored as given (scikit-learn's convention) ...
    with pytest.raises(ParamError, match=r"max_depth: must be an integer from 1 to 16, not 4\.5"):
        est.secureboost_params()  # ... and refused when fit builds the params
    with pytest.raises(ParamError, match="n_estimators"):
        SecureBoostClassifier(n_estimators=True).secureboost_params()
    assert SecureBoostRegressor(base_score=150.0).secureboost_params().objective == "reg:squarederror"
    with pytest.raises(ParamError, match="base_score"):
        SecureBoostClassifier(base_score=1.5).secureboost_params()
    clone = SecureBoostClassifier(**SecureBoostClassifier(n_estimators=3, learning_rate=1).get_params())
    assert clone.secureboost_params() == SecureBoostParams(n_estimators=3, learning_rate=1.0)
