"""misuan.params: lists and tables are stored converted, defaults are documented as TOML."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import pytest

from misuan.errors import JobSpecError
from misuan.params import ParamDoc, check_params, param, param_docs, parse_params
from misuan.protocols.describe import DescribeParams


@dataclasses.dataclass(frozen=True)
class Levels:
    levels: tuple[float, ...] = param((0.5,), "levels")
    names: tuple[str, ...] = param((), "names")
    weights: Mapping[str, float] = param({}, "weights by name")

    def __post_init__(self) -> None:
        check_params(self, "levels")


def test_a_list_is_stored_as_a_tuple_of_converted_items() -> None:
    p = Levels(levels=[1, 2], names=["a", "b"])  # type: ignore[arg-type]
    assert p.levels == (1.0, 2.0) and all(type(v) is float for v in p.levels)
    assert p.names == ("a", "b")
    parsed = parse_params(Levels, {"levels": [1, 0.25], "names": ["x"]}, "step[1] 'toy'.params", JobSpecError)
    assert parsed.levels == (1.0, 0.25) and parsed.names == ("x",)
    assert DescribeParams(quantiles=[0.25, 0.75]).quantiles == (0.25, 0.75)  # type: ignore[arg-type]
    hash(DescribeParams(share=["a"], quantiles=[0.5]))  # type: ignore[arg-type]  # tuples keep it hashable


def test_a_table_is_stored_as_a_copy_with_converted_values() -> None:
    given = {"a": 1}
    p = Levels(weights=given)  # type: ignore[arg-type]
    assert p.weights == {"a": 1.0} and type(p.weights["a"]) is float
    given["b"] = 2
    assert p.weights == {"a": 1.0}  # the caller's dict is not the params'


def test_a_list_item_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(JobSpecError, match=r"^step\[1\] 'toy'\.params\.levels: must be a list of number"):
        parse_params(Levels, {"levels": [1, "2"]}, "step[1] 'toy'.params", JobSpecError)


def test_no_params_declared_refuses_every_key() -> None:
    assert parse_params((), {}, "step[1] 'toy'.params", JobSpecError) == ()
    with pytest.raises(JobSpecError, match=r"^step\[1\] 'toy'\.params: unknown key\(s\) \['a'\]; this takes no parameters"):
        parse_params((), {"a": 1}, "step[1] 'toy'.params", JobSpecError)


@pytest.mark.parametrize(
    ("default", "text"),
    [
        ((), "[]"),
        (("a", "b"), '["a", "b"]'),
        ((0.05, 0.5), "[0.05, 0.5]"),
        ({}, "{}"),
        ({"income": "tree", "two words": 1}, '{ income = "tree", "two words" = 1 }'),
        (None, "(none)"),
        (True, "true"),
        ("ou", '"ou"'),
        (10, "10"),
    ],
)
def test_defaults_are_written_as_a_job_spec_writes_them(default: object, text: str) -> None:
    assert ParamDoc("x", "t", default, "", "").default_text == text


def test_docs_of_a_tuple_default() -> None:
    rows = {r.name: r.default_text for r in param_docs([Levels])}
    assert rows == {"levels": "[0.5]", "names": "[]", "weights": "{}"}
