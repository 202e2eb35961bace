"""Scenario sections: cross-field rules, shipped files, overrides, text data and models."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedsim.config import ScenarioError, to_table
from fedsim.scenario import (
    ClientConfig,
    DataConfig,
    EvaluationConfig,
    ModelConfig,
    Scenario,
    load_scenario,
    parse_scenario,
)
from tests.conftest import REPO

SCENARIOS = sorted((REPO / "scenarios").glob("*.toml"))


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_shipped_scenarios_are_valid_and_round_trip(path: Path) -> None:
    scenario = load_scenario(path)
    assert parse_scenario(scenario.to_toml()) == scenario


def test_quickstart_in_scenarios_is_the_packaged_default() -> None:
    assert (REPO / "scenarios" / "quickstart.toml").read_text() == (
        REPO / "fedsim" / "quickstart.toml"
    ).read_text()


def test_overrides_are_typed_like_the_file() -> None:
    scenario = parse_scenario(
        "", ("rounds=5", "client.lr=0.05", "strategy.name=fedprox", "strategy.proximal_mu=0.1")
    )
    assert (scenario.rounds, scenario.client.lr, scenario.strategy.name) == (5, 0.05, "fedprox")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[data]\npartition = "natural"', "data.partition: 'natural' needs a dataset with natural clients"),
        ('[data]\ndataset = "synthetic"', "model.name: 'cnn' needs image data"),
        ("[strategy]\nproximal_mu = 0.1", "strategy.proximal_mu: only used by 'fedprox'"),
        (
            "[data]\nnum_clients = 3\n[strategy]\nmin_train_clients = 4",
            "strategy.min_train_clients: expected at most",
        ),
        ('name = ""', "name: expected a non-empty name"),
        ("rounds = 0", "rounds: expected a value >= 1, got 0"),
        ("[resources]\nclient_gpus = 2", "resources.client_gpus: expected a value <= 1"),
        ("[evaluation]\ntarget_accuracy = 0", "evaluation.target_accuracy: expected a value > 0"),
        ("rounds = 3\nrounds = 4", "scenario: invalid TOML"),
    ],
)
def test_bad_scenarios_name_the_key(text: str, message: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_unreadable_file_is_a_scenario_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read scenario file"):
        load_scenario(tmp_path / "missing.toml")


def test_defaults_are_mcmahans_mnist_setting() -> None:
    s = Scenario()
    assert (s.data.num_clients, s.strategy.fraction_train, s.client.batch_size) == (100, 0.1, 10)


def leaf_keys(table: dict[str, object], prefix: str = "") -> list[str]:
    keys = []
    for key, value in table.items():
        path = f"{prefix}{key}"
        keys.extend(leaf_keys(value, f"{path}.") if isinstance(value, dict) else [path])  # type: ignore[arg-type]
    return keys


def test_readme_documents_every_scenario_key_and_file() -> None:
    readme = (REPO / "README.md").read_text()
    table = to_table(Scenario(evaluation=EvaluationConfig(target_accuracy=0.5), data=DataConfig(root="x")))
    text = to_table(  # the keys only text scenarios set
        Scenario(
            data=DataConfig(dataset="text", path="x.txt", num_clients=2),
            model=ModelConfig(name="gru"),
            client=ClientConfig(max_grad_norm=1.0),
        )
    )
    missing = [k for k in dict.fromkeys(leaf_keys(table) + leaf_keys(text)) if f"| `{k}` |" not in readme]
    assert not missing, f"README's scenario reference lacks {missing}"
    assert all(f"`scenarios/{p.name}`" in readme for p in SCENARIOS)


SHAKESPEARE = """
[data]
dataset = "shakespeare"
partition = "natural"
[model]
name = "lstm"
"""


def test_shakespeare_defaults_to_the_tiny_shakespeare_file_and_the_data_decides_clients() -> None:
    data = parse_scenario(SHAKESPEARE).data
    assert data.text_path == "shakespeare/tinyshakespeare.txt" and data.seq_len == 80
    assert data.num_clients is None


def test_the_scenario_round_trips_through_toml_without_a_client_count() -> None:
    scenario = parse_scenario(SHAKESPEARE, ("client.max_grad_norm=5",))
    assert parse_scenario(scenario.to_toml()) == scenario
    assert "num_clients" not in scenario.to_toml()


def test_other_data_sets_fill_in_100_clients_so_the_run_folder_records_them() -> None:
    scenario = parse_scenario('[data]\ndataset = "synthetic"\n[model]\nname = "mlp"')
    assert scenario.data.num_clients == 100 and "num_clients = 100" in scenario.to_toml()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ("data.num_clients=10",),
            r"^data\.num_clients: shakespeare with partition 'natural' has one client per role",
        ),
        (
            ("model.name=mlp",),
            r"^model\.name: shakespeare is character sequences: expected a sequence model \(gru, lstm\), "
            r"got 'mlp'",
        ),
        (("model.name=cnn",), r"^model\.name: 'cnn' needs image data"),
        (("data.partition=dirichlet",), r"^data\.partition: 'dirichlet' splits by class label"),
        (("data.seq_len=0",), r"^data\.seq_len: expected a value >= 1, got 0"),
        (("data.min_samples=0",), r"^data\.min_samples: expected a value >= 1"),
        (("model.hidden_size=0",), r"^model\.hidden_size: expected a value >= 1"),
        (("client.max_grad_norm=0",), r"^client\.max_grad_norm: expected a value > 0"),
        (("data.path=''",), r"^data\.path: expected a file or folder name"),
    ],
)
def test_bad_text_settings_name_their_key(overrides: tuple[str, ...], message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        parse_scenario(SHAKESPEARE, overrides)


def test_sequence_models_need_text_data() -> None:
    with pytest.raises(
        ScenarioError, match=r"^model\.name: 'gru' reads character sequences .*mnist is not text"
    ):
        parse_scenario('[data]\ndataset = "mnist"\n[model]\nname = "gru"')


def test_text_needs_a_path_and_only_text_reads_one() -> None:
    with pytest.raises(ScenarioError, match=r"^data\.path: required for dataset 'text'"):
        parse_scenario('[data]\ndataset = "text"\n[model]\nname = "gru"')
    with pytest.raises(
        ScenarioError, match=r"^data\.path: only read by text datasets; mnist uses data\.root"
    ):
        parse_scenario('[data]\ndataset = "mnist"\npath = "x.txt"\n[model]\nname = "cnn"')


def test_iid_shakespeare_may_fix_its_client_count() -> None:
    data = parse_scenario(SHAKESPEARE, ("data.partition=iid", "data.num_clients=20")).data
    assert data.num_clients == 20
