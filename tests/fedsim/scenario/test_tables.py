"""The generic loader: every bad key is named, every value typed like the file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest

from fedsim.scenario.tables import (
    ScenarioError,
    apply_override,
    bounded,
    count,
    from_table,
    parse_value,
    to_table,
)


@dataclass(frozen=True)
class Inner:
    rate: float = bounded(0.5, gt=0, le=1)
    mode: Literal["a", "b"] = "a"


@dataclass(frozen=True)
class Outer:
    count: int = bounded(1, ge=1)
    flag: bool = False
    label: str = "x"
    limit: float | None = None
    inner: Inner = Inner()


def error_of(table: dict[str, object]) -> str:
    with pytest.raises(ScenarioError) as caught:
        from_table(Outer, table)
    return str(caught.value)


def test_defaults_fill_missing_keys() -> None:
    assert from_table(Outer, {}) == Outer()


def test_integers_are_accepted_where_numbers_are_expected() -> None:
    assert from_table(Outer, {"inner": {"rate": 1}}).inner.rate == 1.0


def test_unknown_key_is_named_with_a_suggestion() -> None:
    message = error_of({"inner": {"rat": 0.1}})
    assert message.startswith("inner.rat: unknown key (did you mean 'rate'?")


def test_wrong_type_names_key_and_expectation() -> None:
    assert error_of({"count": "3"}) == "count: expected an integer, got '3'"
    assert error_of({"count": True}) == "count: expected an integer, got True"
    assert error_of({"flag": 1}) == "flag: expected true or false, got 1"
    assert error_of({"inner": 3}) == "inner: expected a table, got 3"


def test_bounds_are_checked() -> None:
    assert error_of({"count": 0}) == "count: expected a value >= 1, got 0"
    assert error_of({"inner": {"rate": 0}}) == "inner.rate: expected a value > 0, got 0.0"
    assert error_of({"inner": {"rate": 1.5}}) == "inner.rate: expected a value <= 1, got 1.5"


def test_literal_lists_the_choices() -> None:
    assert error_of({"inner": {"mode": "c"}}) == "inner.mode: expected one of 'a', 'b', got 'c'"


def test_optional_values_take_the_inner_type() -> None:
    assert from_table(Outer, {"limit": 2}).limit == 2.0
    assert error_of({"limit": "none"}) == "limit: expected a number, got 'none'"


def test_to_table_leaves_out_unset_optionals_and_round_trips() -> None:
    value = Outer(count=3, inner=Inner(rate=0.25, mode="b"))
    table = to_table(value)
    assert "limit" not in table
    assert from_table(Outer, table) == value


@pytest.mark.parametrize(
    ("raw", "value"),
    [("0.05", 0.05), ("5", 5), ("true", True), ("fedprox", "fedprox"), ('"3"', "3"), ("[1, 2]", [1, 2])],
)
def test_override_values_are_read_as_toml_else_as_text(raw: str, value: object) -> None:
    assert parse_value(raw) == value


def test_override_creates_nested_tables() -> None:
    table: dict[str, object] = {"count": 1}
    apply_override(table, "inner.rate = 0.2")
    assert table == {"count": 1, "inner": {"rate": 0.2}}


def test_override_refuses_to_descend_into_a_value() -> None:
    with pytest.raises(ScenarioError, match=r"^count: is a value, not a table$"):
        apply_override({"count": 1}, "count.x=2")


def test_override_needs_an_equals_sign() -> None:
    with pytest.raises(ScenarioError, match=r"^--set: expected KEY=VALUE"):
        apply_override({}, "rounds")


@pytest.mark.parametrize(("n", "text"), [(0, "0 rounds"), (1, "1 round"), (2, "2 rounds"), (20, "20 rounds")])
def test_counts_are_singular_only_for_one(n: int, text: str) -> None:
    assert count(n, "round") == text
