"""Fuzzing the scenario loader: any input is a Scenario or one ScenarioError line, never a crash.

Hypothesis builds tables from the real keys (and unknown ones) with values of every
TOML type, huge and negative numbers, nan and inf, control characters; TOML text that
is mangled; and ``--set`` assignments.  Derandomized, so CI runs the same cases.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path
from typing import Any

import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedsim.cli import main
from fedsim.scenario import plugins
from fedsim.scenario.files import parse_scenario, parse_table
from fedsim.scenario.sections import Scenario
from fedsim.scenario.tables import ScenarioError, apply_override, from_table, to_table
from tests.conftest import REPO
from tests.fedsim.scenario.test_reference import leaf_keys

FUZZ = settings(
    max_examples=300, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck)
)
QUICKSTART = (REPO / "fedsim" / "quickstart.toml").read_text()
# Every key of a resolved scenario, with a strategy and an attack of each kind's keys.
KEYS = sorted(
    {
        *leaf_keys(to_table(Scenario())),
        *leaf_keys(to_table(parse_scenario('[strategy]\nname = "krum"\n[attack]\nkind = "scale"'))),
        "strategy.params.eta",
        "strategy.params.num_nodes_to_select",
        "model.params.hidden_size",
        "data.params.devices",
        "client.update",
        "attack.noise_std",
        "data.root",
        "data.path",
        "evaluation.target_accuracy",
        "client.max_grad_norm",
        "compare.variants",
    }
)
WORDS = st.sampled_from(
    ["fedavg", "fedprox", "krum", "mnist", "synthetic", "text", "natural", "drop", "partial", "lstm", "x"]
)
SCALARS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, 2, -1, 2**63 - 1, 2**63, 2**64, 10**400]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e-300, 1e308, 0.5, 1.0]),
    st.booleans(),
    WORDS,
    st.text(max_size=12),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def nest(assignments: dict[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}``; a key that is both a value and a table keeps the first."""
    table: dict[str, Any] = {}
    for path, value in assignments.items():
        *parents, leaf = path.split(".")
        node = table
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        else:
            node.setdefault(leaf, value)
    return table


def accepts_or_names_the_problem(text: str, overrides: tuple[str, ...] = ()) -> None:
    try:
        scenario = parse_scenario(text, overrides)
    except ScenarioError as error:
        assert str(error) and "\n" not in str(error)
        return
    assert parse_scenario(scenario.to_toml()) == scenario  # what loads, saves and loads again
    for population in (1, 3, 100):  # as the engine checks once the data say how many clients
        try:
            scenario.check_population(population)
        except ScenarioError as error:
            assert "\n" not in str(error)


@FUZZ
@given(st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=10), VALUES, max_size=8))
def test_tables_of_known_and_unknown_keys_with_any_values(assignments: dict[str, Any]) -> None:
    try:
        text = tomli_w.dumps(nest(assignments))
    except (TypeError, ValueError):  # tomli_w cannot write it, so no file could hold it either
        return
    accepts_or_names_the_problem(text)


@FUZZ
@given(st.dictionaries(st.sampled_from(KEYS), SCALARS | WORDS, min_size=1, max_size=5))
def test_known_keys_with_scalar_values(assignments: dict[str, Any]) -> None:
    accepts_or_names_the_problem(tomli_w.dumps(nest(assignments)))


@FUZZ
@given(st.text(max_size=200))
def test_any_text(text: str) -> None:
    accepts_or_names_the_problem(text)


@FUZZ
@given(st.data())
def test_a_valid_file_mangled(data: st.DataObject) -> None:
    lines = QUICKSTART.splitlines()
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(lines) - 1))
        action = data.draw(st.sampled_from(["drop", "repeat", "cut", "insert"]))
        if action == "drop":
            del lines[i]
        elif action == "repeat":
            lines.insert(i, lines[i])
        elif action == "cut":
            lines[i] = lines[i][: data.draw(st.integers(0, max(0, len(lines[i]) - 1)))]
        else:
            lines.insert(i, data.draw(st.text(max_size=30)))
        if not lines:
            break
    accepts_or_names_the_problem("\n".join(lines))


@FUZZ
@given(
    st.lists(st.sampled_from(KEYS) | st.text(max_size=12), max_size=3),
    st.lists(st.text(max_size=12), max_size=3),
)
def test_set_overrides(keys: list[str], values: list[str]) -> None:
    assignments = tuple(f"{k}={v}" for k, v in zip(keys, values, strict=False)) + tuple(values)
    accepts_or_names_the_problem(QUICKSTART, assignments)


NAMES = st.sampled_from(
    sorted(
        {
            *plugins.REGISTRY["strategy"],
            "mnist",
            "synthetic",
            "shakespeare",
            "text",
            "iid",
            "dirichlet",
            "shards",
            "natural",
            "cnn",
            "mlp",
            "logreg",
            "lstm",
            "gru",
            "sign_flip",
            "label_flip",
            "drop",
            "partial",
        }
    )
)
NEAR_VALID = st.one_of(st.integers(-2, 120), st.floats(-0.5, 2.0), st.booleans(), NAMES)


@FUZZ
@given(st.dictionaries(st.sampled_from(KEYS), NEAR_VALID, min_size=1, max_size=5))
def test_plausible_overrides_of_a_valid_file(assignments: dict[str, Any]) -> None:
    """Values near the valid ones reach the cross-field rules (Krum's n > 2f + 2, stragglers, ...)."""
    overrides = tuple(f"{k}={tomli_w.dumps({'v': v})[4:].strip()}" for k, v in assignments.items())
    accepts_or_names_the_problem(QUICKSTART, overrides)


@FUZZ
@given(st.dictionaries(st.sampled_from(KEYS), NEAR_VALID | VALUES, max_size=5))
def test_validate_exits_0_or_2_with_one_line(assignments: dict[str, Any]) -> None:
    try:
        text = tomli_w.dumps(nest(assignments))
    except (TypeError, ValueError):
        return
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.toml"
        path.write_text(text, encoding="utf-8")
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(["validate", str(path)])
    assert code in (0, 2)
    if code == 2:
        assert err.getvalue().count("\n") == 1 and err.getvalue().startswith("fedsim: error: ")


def test_an_override_through_a_value_is_refused() -> None:
    table = parse_table("rounds = 3")
    try:
        apply_override(table, "rounds.x=1")
    except ScenarioError as error:
        assert str(error) == "rounds: is a value, not a table"
    else:
        raise AssertionError("expected a ScenarioError")
    assert from_table(Scenario, parse_table("rounds = 3")).rounds == 3
