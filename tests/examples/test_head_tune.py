"""examples/head_tune: a user's personalization hook, by hand and run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fedsim.cli import main
from fedsim.data import Split
from fedsim.models.build import build_model
from fedsim.results.run_dir import read_metrics
from fedsim.scenario.sections import ClientConfig, ModelConfig
from strategies.algorithm import ClientStart
from tests.examples import EXAMPLES, example_module

SCENARIO = EXAMPLES / "head_tune" / "scenario.toml"
head_tune = example_module("head_tune", "head_tune")


def test_only_the_last_layer_moves_and_the_body_trains_again_afterwards() -> None:
    model = build_model(ModelConfig("mlp"), (6,), 3, seed=0)
    x = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}

    def train(weights: dict[str, np.ndarray], local: object, epochs: int) -> dict[str, np.ndarray]:
        model.load_state_dict({k: torch.tensor(v) for k, v in weights.items()})
        for p in model.parameters():  # a step on what requires a gradient, as the built-in steps
            if p.requires_grad:
                p.data += 1.0
        return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}

    data = Split(torch.zeros(4, 6), torch.zeros(4, dtype=torch.int64))
    start = ClientStart(model, x, {}, {}, ClientConfig(), {}, torch.device("cpu"), data, {}, train)  # type: ignore[arg-type]
    personal = head_tune.personalize(start)
    names = list(x)
    assert all(np.array_equal(personal[n], x[n]) for n in names[:-2])  # the body as received
    assert all(np.array_equal(personal[n], x[n] + 1) for n in names[-2:])  # the head trained
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.usefixtures("ray_cluster")
def test_the_readme_command_runs_and_reports_personal_accuracy(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["run", str(SCENARIO), "--set", "rounds=2", "--out", str(out)]) == 0
    last = read_metrics(out)[-1]
    assert last["clients_evaluated"] == 30
    assert last["personal_acc_mean"] > last["client_acc_mean"]  # its own head fits its own labelling
