"""The Shakespeare LSTM workload: the scenario file's settings, fedsim's sample, its SGD steps."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from benchmarks import plain
from benchmarks.workloads import SCENARIO_FILES, Workload
from fedsim.scenario.files import load_scenario
from strategies.plan import plan_round


def test_lstm_workload_is_the_shakespeare_scenario_with_short_rounds() -> None:
    scenario, file = Workload.of("lstm", rounds=4).scenario(), load_scenario(SCENARIO_FILES["lstm"])
    assert dataclasses.replace(scenario.data, max_samples=None) == file.data  # one client per role
    assert scenario.data.max_samples == 500 and scenario.model == file.model  # 8-dim, 2 x 256
    client = scenario.client
    assert (client.local_epochs, client.batch_size, client.lr, client.max_grad_norm) == (1, 10, 1.47, 5.0)
    assert scenario.rounds == 4 and not scenario.evaluation.centralized
    assert scenario.train_cohort(220) == 10


def test_lstm_workload_samples_fedsims_roles(shakespeare_file: Path) -> None:
    workload = Workload.of("lstm")
    data = plain.load(workload, str(shakespeare_file.parents[1]))
    assert len(data.clients) == 220 and max(len(c) for c in data.clients) == 500
    scenario = workload.scenario()
    first = plain.cohort(scenario, 1, len(data.clients))
    assert first == plan_round(scenario, 1, 0, 220).trains()  # what fedsim's server sends
    assert first == [5, 33, 64, 68, 78, 85, 91, 110, 112, 133]  # the seeded draw, pinned
    assert plain.cohort(scenario, 2, 220) != first


def test_plain_lstm_loop_takes_fedsims_sgd_steps(shakespeare_file: Path) -> None:
    # Every role has >= 100 windows, so each is cut to 25: ceil(25 / 10) = 3 steps an epoch.
    workload = Workload.of("lstm", per_round=2, rounds=2, local_epochs=2, max_samples=25)
    data = plain.load(workload, str(shakespeare_file.parents[1]))
    seconds, steps = plain.run_rounds(workload, data, threads=1)
    scenario = workload.scenario()
    planned = sum(
        scenario.client.local_steps(len(data.clients[p]))
        for r in (1, 2)
        for p in plan_round(scenario, r, 0, len(data.clients)).trains()
    )
    assert len(seconds) == 2 and steps == planned == 2 * 2 * 2 * 3  # rounds x clients x E x batches


def test_the_data_must_hold_the_clients_the_fraction_was_sized_for(shakespeare_file: Path) -> None:
    workload = Workload.of("lstm", num_clients=200, per_round=20)
    with pytest.raises(ValueError, match=r"the data hold 220 clients, not 200"):
        plain.load(workload, str(shakespeare_file.parents[1]))
