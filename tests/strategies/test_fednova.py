"""FedNova (Wang et al. 2020, strategies/fednova.py): its aggregation, its clients' report, a run.

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
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from clients import app
from fedsim import protocol as keys
from fedsim.cli import main
from fedsim.data import load_federated
from fedsim.results.run_dir import read_metrics
from fedsim.scenario.files import parse_scenario
from strategies import fednova
from tests.clients.test_app import initial_model, message, node, scenario_toml
from tests.conftest import REPO

SCENARIO = REPO / "scenarios" / "compare_fednova.toml"


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


@pytest.mark.usefixtures("task_identity")
@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_a_client_reports_its_steps_and_their_weight_with_any_update(momentum: float) -> None:
    """The built-in update, a straggler's fewer epochs: tau_i = epochs * ceil(n_i / B)."""
    toml = parse_scenario(scenario_toml("fednova"), (f"client.momentum={momentum}",)).to_toml()
    loaded = parse_scenario(toml)
    samples = len(load_federated(loaded.data, loaded.seed).client(2))
    straggler = message(toml, initial_model(), 1, config={keys.LOCAL_EPOCHS: 3})
    metrics = app.train(straggler, node(2)).content.metric_records[keys.METRICS]
    steps = 3 * math.ceil(samples / loaded.client.batch_size)
    assert metrics["tau"] == steps and metrics["a_norm"] == fednova.momentum_norm(steps, momentum)
    assert metrics[keys.TRAIN_LOSS] > 0


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


@pytest.mark.engine
@pytest.mark.usefixtures("ray_cluster")
def test_the_shipped_scenario_records_tau_eff_in_every_row(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert (
        main(["run", str(SCENARIO), "--set", "rounds=3", "--set", "strategy.name=fednova", "--out", str(out)])
        == 0
    )
    rows = read_metrics(out)
    assert [r["round"] for r in rows] == [1, 2, 3]
    assert all(r["tau_eff"] > 1 for r in rows)  # the strategy's own metric, in every row
    # tau_eff = sum_i p_i a_i, which FedAvg's example-weighted mean of the clients' a_norm is too
    assert all(r["tau_eff"] == pytest.approx(r["a_norm"]) for r in rows)
    assert all(r["stragglers"] > 0 for r in rows)  # unequal work: stragglers, clients' sizes
    assert len({r["tau_eff"] for r in rows}) == 3
    assert rows[-1]["accuracy"] > 0.2  # ten classes
