"""The generated scenario reference: every key a scenario can hold, typed from the code."""

from __future__ import annotations

from typing import Annotated, Literal

import pytest

from fedsim.scenario import plugins, reference, signatures
from fedsim.scenario.files import parse_scenario
from fedsim.scenario.tables import Bounds, to_table

KEYS = {key.name: key for key in reference.all_keys()}


def leaf_keys(table: dict[str, object], prefix: str = "") -> list[str]:
    keys = []
    for key, value in table.items():
        path = f"{prefix}{key}"
        keys.extend(leaf_keys(value, f"{path}.") if isinstance(value, dict) else [path])  # type: ignore[arg-type]
    return keys


def keys_scenarios_hold() -> set[str]:
    """The keys of real scenarios, found without the reference: every section, attack kind,
    privacy mode and built-in plug-in's params, as the loader writes them back."""
    held = {"compare.seeds", "compare.variants", "python_path"}
    for attack in ('kind = "sign_flip"', 'kind = "gaussian_noise"'):
        text = (
            f"[attack]\nfraction = 0.1\n{attack}\n[data]\nroot = 'x'\n[evaluation]\ntarget_accuracy = 0.5\n"
        )
        held.update(leaf_keys(to_table(parse_scenario(text))))
    for kind in plugins.KINDS:
        held.add(kind.params_key)
        for name in plugins.REGISTRY[kind.name]:
            target = plugins.resolve(kind, name)
            params = signatures.bind(kind, name, target, {"path": "x"} if name == "text" else {})
            held.update(f"{kind.params_key}.{key}" for key in params)
    for privacy in (
        'mode = "central"',
        'mode = "central"\nclipping = "adaptive"\nnoise_multiplier = 0.5\nclipped_count_stddev = 1.0',
        'mode = "local"',
        'mode = "sample"',
    ):
        held.update(
            leaf_keys(to_table(parse_scenario(f"[privacy]\n{privacy}\ndelta = 1e-5\ntarget_epsilon = 2.0\n")))
        )
    return held


def test_the_reference_lists_every_key_a_scenario_can_hold() -> None:
    assert not keys_scenarios_hold() - set(KEYS)


@pytest.mark.parametrize(
    ("name", "type_", "default"),
    [
        ("rounds", "integer (≥ 1, ≤ 100000)", "10"),
        ("data.num_clients", "integer, optional (≥ 1)", "unset"),
        ("resources.engine", '"auto" or "per_client" or "cohort"', '"auto"'),
        ("attack.scale", "number, optional (> 0)", "4 (sign_flip), 10 (scale)"),
        ("privacy.mode", '"central" or "local" or "sample"', "required"),
        ("strategy.params.eta", "number (> 0)", "0.1 (fedadam), 0.01 (fedyogi), 0.1 (fedadagrad)"),
        ("data.params.path", "string", '"shakespeare/tinyshakespeare.txt" (shakespeare), required (text)'),
        ("compare.variants.set", "array of strings", "[]"),
    ],
)
def test_types_bounds_and_defaults_are_the_codes_own(name: str, type_: str, default: str) -> None:
    assert (KEYS[name].type, KEYS[name].default) == (type_, default)


def test_a_params_key_names_the_builtins_that_take_it() -> None:
    assert KEYS["strategy.params.beta_1"].builtins == ("fedadam", "fedyogi")
    assert KEYS["model.params.hidden_size"].builtins == ("lstm", "gru")


@pytest.mark.parametrize(
    ("hint", "words"),
    [
        (int, "integer"),
        (bool | None, "boolean, optional"),
        (Literal["a", "b"], '"a" or "b"'),
        (tuple[int, ...], "array of integers"),
        (Annotated[float, Bounds(gt=0, le=1)], "number (> 0, ≤ 1)"),
        (float | Literal["auto"], 'number or "auto"'),
    ],
)
def test_type_names_are_the_words_of_toml(hint: object, words: str) -> None:
    assert reference.type_name(hint) == words


def test_the_page_has_a_table_per_section_and_the_meanings_given() -> None:
    page = reference.markdown({"rounds": "federated rounds"}, {"x.toml": "runs x"})
    assert "## [strategy.params]" in page and "## [privacy]" in page
    assert "| `rounds` | integer (≥ 1, ≤ 100000) | 10 | federated rounds |" in page
    assert "| `strategy.params.q` | number (≥ 0) | 0.1 | `qfedavg` |" in page
    assert page.endswith("| `scenarios/x.toml` | runs x |\n")
