"""The time-to-accuracy benchmark's plumbing: what fedsim is asked to run, how results read."""

from __future__ import annotations

import tomli_w

from benchmarks.to_target import Reached, fedsim_scenario, table
from benchmarks.workloads import Workload
from fedsim.scenario.files import parse_scenario


def test_fedsim_runs_the_workload_to_its_target_on_the_engine_it_picks() -> None:
    scenario = parse_scenario(tomli_w.dumps(fedsim_scenario(Workload(model="2nn", rounds=50), 0.97)))
    evaluation = scenario.evaluation
    assert (evaluation.target_accuracy, evaluation.stop_at_target, evaluation.every) == (0.97, True, 1)
    assert evaluation.centralized and scenario.resources.engine == "auto" and scenario.rounds == 50
    assert (scenario.model.name, scenario.data.num_clients, scenario.client.lr) == ("mlp", 100, 0.1)


def test_a_system_that_missed_the_target_shows_dashes() -> None:
    rows = table([Reached("plain", "2nn 100x10", 0.97, None, None, None, "exit 1")]).splitlines()
    assert rows[-1] == "| 2nn 100x10 | plain | 0.97 | - | - | - | exit 1 |"
