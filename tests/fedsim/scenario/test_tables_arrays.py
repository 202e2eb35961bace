"""The loader's TOML arrays: ``tuple[X, ...]`` fields, element by element."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from fedsim.scenario.tables import ScenarioError, from_table, to_table


@dataclass(frozen=True)
class Item:
    name: str
    weight: float = 1.0


@dataclass(frozen=True)
class Holder:
    seeds: tuple[int, ...] = ()
    items: tuple[Item, ...] = ()


def test_arrays_of_values_and_of_tables() -> None:
    holder = from_table(Holder, {"seeds": [1, 2], "items": [{"name": "a"}, {"name": "b", "weight": 2}]})
    assert holder == Holder((1, 2), (Item("a"), Item("b", 2.0)))
    assert to_table(holder) == {
        "seeds": [1, 2],
        "items": [{"name": "a", "weight": 1.0}, {"name": "b", "weight": 2.0}],
    }


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"seeds": 3}, "seeds: expected an array, got 3"),
        ({"seeds": [1, "x"]}, "seeds[1]: expected an integer, got 'x'"),
        ({"items": [{"name": "a"}, {"nme": "b"}]}, "items[1].nme: unknown key (did you mean 'name'?"),
        ({"items": [{"weight": 1.0}]}, "items[0].name: missing"),
    ],
)
def test_each_element_is_checked_and_named(table: dict[str, object], message: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        from_table(Holder, table)
    assert str(caught.value).startswith(message)
