"""examples/fednova: FedNova (Wang et al. 2020) as a user's strategy and local update.

The aggregation against a two-client example worked out by hand (dyadic numbers: exact):
x = [1, 2].  Client A: y_A = [0, 2], n_A = 1, tau_A = 1.  Client B: y_B = [1, -2], n_B = 3, tau_B = 4.
  p = [1/4, 3/4];  tau_eff = 1/4 * 1 + 3/4 * 4 = 3.25
  d_A = (x - y_A) / 1 = [1, 0];  d_B = (x - y_B) / 4 = [0, 4] / 4 = [0, 1]
  sum p_i d_i = [0.25, 0.75]
  x+ = x - 3.25 * [0.25, 0.75] = [0.1875, -0.4375]
FedAvg would give 1/4 y_A + 3/4 y_B = [0.75, -1.0]: it follows B, who took four times the steps.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from torch import nn

import fedsim
from clients.update import UpdateContext
from fedsim.cli import main
from fedsim.data import Split
from fedsim.results.run_dir import read_metrics
from fedsim.scenario.sections import ClientConfig, Scenario
from strategies.context import StrategyContext
from tests.examples import EXAMPLES, example_module

SCENARIO = EXAMPLES / "fednova" / "scenario.toml"
fednova = example_module("fednova", "fednova")


def w(*values: float) -> dict[str, np.ndarray]:
    return {"w": np.array(values, dtype=np.float64)}


X, Y_A, Y_B = w(1.0, 2.0), w(0.0, 2.0), w(1.0, -2.0)


def test_aggregate_normalizes_each_update_by_its_steps() -> None:
    new, tau_eff = fednova.fednova_aggregate(X, [Y_A, Y_B], [1.0, 3.0], [1.0, 4.0])
    assert tau_eff == 3.25
    assert new["w"].tolist() == [0.1875, -0.4375]


def test_aggregate_is_fedavg_when_every_client_did_the_same_work() -> None:
    """tau_eff = 4, sum p_i (x - y_i) / 4 = [0.25 * 1 + 0.75 * 0, 0.75 * 4] / 4: x+ = [0.75, -1.0]."""
    new, tau_eff = fednova.fednova_aggregate(X, [Y_A, Y_B], [1.0, 3.0], [4.0, 4.0])
    assert tau_eff == 4.0
    assert new["w"].tolist() == [0.75, -1.0]


def test_server_learning_rate_scales_the_step_and_arrays_keep_their_dtype() -> None:
    """eta_g = 0.5: x+ = [1, 2] - 0.5 * 3.25 * [0.25, 0.75] = [0.59375, 0.78125]."""
    x32 = {k: v.astype(np.float32) for k, v in X.items()}
    new, _ = fednova.fednova_aggregate(x32, [Y_A, Y_B], [1.0, 3.0], [1.0, 4.0], server_lr=0.5)
    assert new["w"].dtype == np.float32 and new["w"].tolist() == [0.59375, 0.78125]


def test_aggregate_refuses_clients_without_work() -> None:
    with pytest.raises(ValueError, match="a_i > 0"):
        fednova.fednova_aggregate(X, [Y_A], [1.0], [0.0])
    with pytest.raises(ValueError, match="one n_i and a_i per client"):
        fednova.fednova_aggregate(X, [Y_A, Y_B], [1.0], [1.0, 1.0])


def test_momentum_norm_sums_each_gradients_weight() -> None:
    """rho = 0.5: gradient j of tau weighs (1 - rho^(tau - j)) / (1 - rho): tau = 2: 1 + 1.5 = 2.5;
    tau = 3: 1 + 1.5 + 1.75 = 4.25."""
    assert fednova.momentum_norm(7, 0.0) == 7.0
    assert fednova.momentum_norm(2, 0.5) == 2.5
    assert fednova.momentum_norm(3, 0.5) == 4.25


def test_local_sgd_reports_its_steps_and_moves_the_model() -> None:
    config = ClientConfig(local_epochs=2, batch_size=4, lr=0.1)
    model = nn.Linear(3, 2)
    before = [p.detach().clone() for p in model.parameters()]
    data = Split(torch.randn(10, 3, generator=torch.Generator().manual_seed(1)), torch.arange(10) % 2)
    ctx = UpdateContext(
        config=config,
        global_weights={k: v.clone() for k, v in model.state_dict().items()},
        generator=torch.Generator().manual_seed(0),
        server_round=1,
        partition_id=0,
        server_config={},
        scenario=Scenario(),
    )
    metrics = fednova.local_sgd(model, data, ctx)
    assert metrics["tau"] == metrics["a_norm"] == 2 * math.ceil(10 / 4) == config.local_steps(10)
    assert metrics["train_loss"] > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


class _Grid:
    def __init__(self, nodes: list[int]) -> None:
        self.nodes = nodes

    def get_node_ids(self) -> list[int]:
        return self.nodes


def _record(arrays: dict[str, np.ndarray]) -> ArrayRecord:
    return ArrayRecord({k: Array(v) for k, v in arrays.items()})


@pytest.mark.usefixtures("task_identity")
def test_strategy_aggregates_the_worked_example_and_returns_tau_eff() -> None:
    strategy = fednova.FedNova(fraction_train=1.0, min_train_nodes=1, min_available_nodes=1)
    sent = list(strategy.configure_train(1, _record(X), ConfigRecord(), _Grid([7, 8])))  # type: ignore[arg-type]

    def reply(to: Message, y: dict[str, np.ndarray], n: float, metrics: dict[str, float]) -> Message:
        numbers = MetricRecord({"num-examples": n, "train_loss": 1.0, **metrics})
        return Message(RecordDict({"arrays": _record(y), "metrics": numbers}), reply_to=to)

    replies = [
        reply(sent[0], Y_A, 1.0, {"tau": 1.0, "a_norm": 1.0}),
        reply(sent[1], Y_B, 3.0, {"tau": 4.0, "a_norm": 4.0}),
    ]
    new, metrics = strategy.aggregate_train(1, replies)
    assert new is not None and metrics is not None
    assert new["w"].numpy().tolist() == [0.1875, -0.4375]
    assert metrics["tau_eff"] == 3.25 and metrics["train_loss"] == 1.0

    with pytest.raises(ValueError, match="without 'a_norm' or 'tau'"):
        strategy.aggregate_train(1, [reply(sent[0], Y_A, 1.0, {})])


def test_strategy_refuses_the_builtin_update_that_reports_no_steps(
    capsys: pytest.CaptureFixture[str],
) -> None:
    scenario = fedsim.load_scenario(SCENARIO, ["client.update=sgd"])
    with pytest.raises(fedsim.ScenarioError, match=r"^client\.update: FedNova needs"):
        fednova.FedNova(context=StrategyContext(scenario, 30))
    assert main(["validate", str(SCENARIO)]) == 0
    assert main(["validate", str(SCENARIO), "--set", "client.update=sgd"]) == 2
    assert "client.update: FedNova needs each client's step count" in capsys.readouterr().err


@pytest.mark.engine
@pytest.mark.usefixtures("ray_cluster")
def test_the_readme_command_records_tau_eff_in_every_row(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["run", str(SCENARIO), "--set", "rounds=3", "--out", str(out)]) == 0
    rows = read_metrics(out)
    assert [r["round"] for r in rows] == [1, 2, 3]
    assert all(r["tau_eff"] > 1 for r in rows)  # the strategy's own metric, in every row
    # tau_eff = sum_i p_i a_i, which FedAvg's example-weighted mean of the clients' a_norm is too
    assert all(r["tau_eff"] == pytest.approx(r["a_norm"]) for r in rows)
    assert all(r["stragglers"] > 0 for r in rows)  # unequal work: stragglers, clients' sizes
    assert len({r["tau_eff"] for r in rows}) == 3
    assert rows[-1]["accuracy"] > 0.2  # ten classes
