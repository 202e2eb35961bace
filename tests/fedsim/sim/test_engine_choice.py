"""The engine a scenario without ``resources.engine`` gets: chosen from the model, the clients'
sizes, the device, the rounds and the compile cache, and said why."""

from __future__ import annotations

from pathlib import Path

import pytest
from torch import nn

from clients import compile_cache
from fedsim.data import FederatedData, find_federated
from fedsim.models.build import build_model
from fedsim.scenario.files import parse_scenario
from fedsim.scenario.sections import Scenario
from fedsim.scenario.tables import ScenarioError
from fedsim.sim import engine_choice
from fedsim.sim.cohort_choice import for_deployment

EVEN = '[data]\ndataset = "synthetic"\npartition = "iid"\nnum_clients = 10\n[model]\nname = "mlp"\n'
UNEVEN = '[data]\ndataset = "synthetic"\npartition = "natural"\n[model]\nname = "mlp"\n'


@pytest.fixture(autouse=True)
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)


def choose(text: str, model: nn.Module | None = None) -> tuple[Scenario, str]:
    scenario = parse_scenario(text)
    data: FederatedData = find_federated(scenario.data, scenario.seed)[0]
    built = model or build_model(scenario.model, data.input_shape, data.num_classes, scenario.seed)
    return engine_choice.resolve(scenario, data, built)


def engine(scenario: Scenario) -> tuple[str, bool | None]:
    return scenario.resources.engine, scenario.resources.capture


def test_a_small_model_on_clients_of_similar_size_trains_in_cohorts_eagerly_on_a_cold_cache() -> None:
    scenario, line = choose(EVEN)
    assert engine(scenario) == ("cohort", False)
    assert line.startswith("engine chosen: cohort (a small model on clients of similar size")
    assert line.endswith("eager steps: a compile would not pay in 10 rounds)")


def test_enough_rounds_turn_capture_on_fewer_when_the_step_is_on_disk() -> None:
    cold, warm = engine_choice.CAPTURE_COLD_ROUNDS, engine_choice.CAPTURE_WARM_ROUNDS
    assert engine(choose(f"rounds = {cold}\n{EVEN}")[0]) == ("cohort", True)
    assert engine(choose(f"rounds = {cold - 1}\n{EVEN}")[0]) == ("cohort", False)
    stops = "[evaluation]\ntarget_accuracy = 0.9\nstop_at_target = true\n"
    scenario, line = choose(f"rounds = {cold}\n{stops}{EVEN}")
    assert engine(scenario) == ("cohort", False) and "stops at its target" in line  # may end at round 3
    model = nn.Sequential(nn.Flatten(), nn.Linear(60, 10))
    compile_cache.mark(compile_cache.step_key(model, parse_scenario(EVEN).client))  # as a worker does
    scenario, line = choose(f"rounds = {warm}\n{EVEN}", model)
    assert engine(scenario) == ("cohort", True) and "compiled from the on-disk cache" in line
    scenario, line = choose(f"rounds = {warm - 1}\n{EVEN}", model)  # tracing still costs ~3 s a worker
    assert engine(scenario) == ("cohort", False) and "a compile from the on-disk cache would not pay" in line
    other = nn.Sequential(nn.Flatten(), nn.Linear(60, 20), nn.Linear(20, 10))
    assert engine(choose(f"rounds = {warm}\n{EVEN}", other)[0]) == ("cohort", False)  # not on disk


@pytest.mark.parametrize(
    ("text", "model", "why"),
    [
        (UNEVEN, None, "the largest client holds"),
        (EVEN, nn.Sequential(nn.Conv1d(1, 2, 3)), "a convolutional model on a CPU"),
        (EVEN, nn.Sequential(nn.LSTM(4, 4)), "the model cannot be stacked: LSTM layers"),
        (f"[faults]\nfailure_rate = 0.1\n{EVEN}", None, "injected faults act per client node"),
        (f"[resources]\nclient_gpus = 0.5\n{EVEN}", None, "on a GPU"),
    ],
)
def test_other_runs_train_client_by_client_and_say_why(text: str, model: nn.Module | None, why: str) -> None:
    scenario, line = choose(text, model)
    assert engine(scenario) == ("per_client", None)
    assert line.startswith(f"engine chosen: per-client ({why}")


def test_a_joined_ray_cluster_gets_a_message_per_client() -> None:
    scenario = parse_scenario(EVEN)
    data = find_federated(scenario.data, scenario.seed)[0]
    model = build_model(scenario.model, data.input_shape, data.num_classes, scenario.seed)
    chosen, line = engine_choice.resolve(scenario, data, model, joined=True)
    assert engine(chosen) == ("per_client", None) and "joined Ray cluster" in line


def test_an_engine_the_scenario_names_is_kept_without_a_word() -> None:
    scenario, line = choose(f'[resources]\nengine = "per_client"\n{EVEN}')
    assert engine(scenario) == ("per_client", None) and line == ""


def test_real_supernodes_run_client_by_client_and_record_it() -> None:
    assert for_deployment(parse_scenario(EVEN)).resources.engine == "per_client"
    with pytest.raises(ScenarioError, match="'cohort' runs in simulation only"):
        for_deployment(parse_scenario(f'[resources]\nengine = "cohort"\n{EVEN}'))
