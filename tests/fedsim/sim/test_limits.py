"""Data too large for this machine's memory, and absurd round counts: refused with a reason."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest

from fedsim.scenario.files import parse_scenario
from fedsim.scenario.sections import MAX_ROUNDS, DataConfig
from fedsim.scenario.tables import ScenarioError
from fedsim.sim import engine, limits
from tests.conftest import REPO

GIB = 2**30


def synthetic(devices: int) -> DataConfig:
    return DataConfig(dataset="synthetic", partition="natural", params={"devices": devices})


def test_synthetic_devices_that_would_not_fit_in_memory_are_refused_with_what_fits() -> None:
    with pytest.raises(ScenarioError) as caught:
        limits.check_memory(synthetic(100_000), processes=3, available=8 * GIB)
    assert str(caught.value) == (
        "data.params.devices: 100000 synthetic devices (~453 samples each) take about 33.8 GiB to build, "
        "in each of 3 processes (the server and every client actor), but this machine has 8.0 GiB "
        "available: at most ~7893 devices fit"
    )
    limits.check_memory(synthetic(7_000), processes=3, available=8 * GIB)
    limits.check_memory(DataConfig(dataset="mnist", num_clients=60_000), processes=3, available=GIB)  # files


def test_a_run_counts_the_server_and_this_machines_client_actors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine.psutil, "virtual_memory", lambda: SimpleNamespace(available=GIB))
    scenario = parse_scenario(
        "[data]\ndataset = 'synthetic'\npartition = 'natural'\n[data.params]\ndevices = 2000\n"
        "[model]\nname = 'mlp'\n"
        "[resources]\nclient_cpus = 1"
    )
    monkeypatch.setattr(engine.cluster, "private_cpus", lambda: 2)
    with pytest.raises(ScenarioError, match=r"0\.7 GiB to build, in each of 3 processes"):
        engine.check_memory(scenario)
    monkeypatch.setattr(engine.cluster, "private_cpus", lambda: None)  # RAY_ADDRESS: actors elsewhere
    engine.check_memory(scenario)


def test_fedsim_run_refuses_an_impossible_client_count_before_building_anything(tmp_path: object) -> None:
    out = f"{tmp_path}/run"
    done = subprocess.run(
        [sys.executable, "-m", "fedsim", "run", "--set", "data.params.devices=100000", "--out", out],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(
        "fedsim: error: data.params.devices: 100000 synthetic devices (~453 samples"
    )


def test_absurd_round_counts_are_refused_at_validation() -> None:
    assert MAX_ROUNDS == 100_000
    parse_scenario(f"rounds = {MAX_ROUNDS}")
    with pytest.raises(ScenarioError, match=r"^rounds: expected a value <= 100000, got 1000000000000000$"):
        parse_scenario("rounds = 1_000_000_000_000_000")
