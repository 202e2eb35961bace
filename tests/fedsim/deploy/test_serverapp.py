"""The ServerApp's run config under `flwr run`: a scenario file, or the resolved scenario itself."""

from __future__ import annotations

import pytest

from fedsim.deploy.serverapp import scenario_from_run_config
from fedsim.scenario.files import load_scenario
from fedsim.scenario.tables import ScenarioError
from tests.conftest import REPO

QUICKSTART = str(REPO / "scenarios" / "quickstart.toml")


def test_a_scenario_file_with_space_separated_overrides() -> None:
    scenario = scenario_from_run_config({"scenario": QUICKSTART, "set": "rounds=3 client.lr=0.05", "out": ""})
    assert (scenario.rounds, scenario.client.lr) == (3, 0.05)


def test_the_resolved_scenario_text_as_fedsim_submit_sends_it_wins() -> None:
    sent = load_scenario(QUICKSTART, ("rounds=2", "data.params.devices=3"))
    config = {"scenario": "", "scenario-toml": sent.to_toml(), "set": "", "out": ""}
    assert scenario_from_run_config(config) == sent


def test_bad_scenario_text_names_the_run_config_key() -> None:
    with pytest.raises(ScenarioError, match=r"^run config scenario-toml: invalid TOML"):
        scenario_from_run_config({"scenario-toml": "rounds = [", "set": ""})
