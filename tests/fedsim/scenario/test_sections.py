"""Scenario sections: cross-field rules, shipped files, overrides, text data and models."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedsim.scenario.files import load_scenario, parse_scenario
from fedsim.scenario.sections import ClientConfig, Scenario
from fedsim.scenario.tables import ScenarioError
from fedsim.sim.preflight import resolved
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
        "", ("rounds=5", "client.lr=0.05", "strategy.name=fedprox", "strategy.params.proximal_mu=0.1")
    )
    assert (scenario.rounds, scenario.client.lr, scenario.strategy.name) == (5, 0.05, "fedprox")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[model]\nhidden_size = 3", "model.hidden_size: moved: write it as model.params.hidden_size"),
        ("[data]\nseq_len = 3", "data.seq_len: moved: write it as data.params.seq_len"),
        ("[data.synthetic]\nalpha = 3", "data.synthetic: moved: write it as data.params"),
        ('[model]\nname = "cn"', "model.name: unknown model 'cn' (did you mean 'cnn'?"),
        ('[client]\nupdate = ""', "client.update: expected a name or package.module:attribute, got ''"),
        (
            "[data]\nnum_clients = 3\n[strategy]\nmin_train_clients = 4",
            "strategy.min_train_clients: expected at most",
        ),
        ('name = ""', "name: expected a non-empty name"),
        ("rounds = 0", "rounds: expected a value >= 1, got 0"),
        ("[resources]\nclient_gpus = 2", "resources.client_gpus: expected a value <= 1"),
        (
            '[resources]\nclient_gpus = "half"',
            "resources.client_gpus: expected a number or 'auto', got 'half'",
        ),
        (
            "[resources]\nclient_gpus = 0.14285714",
            "resources.client_gpus: Ray counts GPU shares in steps of 0.0001, got 0.14285714",
        ),
        ("[evaluation]\ntarget_accuracy = 0", "evaluation.target_accuracy: expected a value > 0"),
        ("rounds = 3\nrounds = 4", "scenario: invalid TOML"),
        (
            '[compression]\nuplink = "int4"',
            "compression.uplink: expected one of 'none', 'fp16', 'int8', 'topk'",
        ),
        ('[compression]\nuplink = "topk"\nfraction = 1.5', "compression.fraction: expected a value <= 1"),
        (
            '[compression]\ndownlink = "int8"\n[privacy]\nmode = "central"\nwhere = "client"',
            "compression.downlink: not with privacy.where = 'client'",
        ),
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
    s = resolved(Scenario(), 100)  # the data set's population, recorded as data.num_clients
    assert (s.data.num_clients, s.strategy.fraction_train, s.client.batch_size) == (100, 0.1, 10)
    assert (s.data.dataset, s.model.name, s.strategy.name, s.client.update) == (
        "mnist",
        "cnn",
        "fedavg",
        "sgd",
    )


def test_a_gpu_share_is_a_number_or_auto_resolved_before_the_run() -> None:
    assert parse_scenario("[resources]\nclient_gpus = 0.0625").resources.gpu_share == 0.0625
    auto = parse_scenario('[resources]\nclient_gpus = "auto"').resources
    assert auto.uses_gpu and not parse_scenario("").resources.uses_gpu
    with pytest.raises(ValueError, match=r"^resources\.client_gpus is 'auto': resolve it first"):
        _ = auto.gpu_share


@pytest.mark.parametrize(
    ("samples", "epochs", "batch", "steps"), [(100, 1, 10, 10), (101, 2, 10, 22), (5, 3, 10, 3)]
)
def test_local_steps_count_the_minibatches(samples: int, epochs: int, batch: int, steps: int) -> None:
    assert ClientConfig(local_epochs=epochs, batch_size=batch).local_steps(samples) == steps


def test_a_stragglers_own_epochs_replace_local_epochs_in_the_step_count() -> None:
    assert ClientConfig(local_epochs=5, batch_size=10).local_steps(101, epochs=2) == 22
