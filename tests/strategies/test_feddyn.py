"""FedDyn (Acar et al. 2021, strategies/feddyn.py): its updates against examples worked out by
hand, its local step's terms, and its client half through the real ClientApp.

Client: g = (0.1, -0.2), theta_k = (1.5, 0.5), theta_server = (1, 1), alpha = 0.1:
  g+ = g - alpha (theta_k - theta_server) = (0.1 - 0.05, -0.2 + 0.05) = (0.05, -0.15)
Server: theta = (1, 2), h = (0.2, 0), two clients (1.5, 1) and (0.5, 2), alpha = 0.5, m = 10:
  sum (theta_k - theta) = (0, -1);  h+ = h - 0.5/10 * (0, -1) = (0.2, 0.05)
  mean theta_k = (1, 1.5);  theta+ = mean - h+ / alpha = (1 - 0.4, 1.5 - 0.1) = (0.6, 1.4)
  a buffer n (no h): the mean alone, (4 + 6) / 2 = 5
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from flwr.app import ConfigRecord, Message, MetricRecord, RecordDict

from clients import app
from fedsim import protocol as keys
from fedsim.scenario.files import parse_scenario
from strategies import feddyn
from strategies.algorithm import ClientStart, Offset, Proximal
from strategies.context import StrategyContext
from tests.clients.test_app import initial_model, message, node, reply_model, scenario_toml


def v(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float64)


def test_the_clients_gradient_update_by_hand() -> None:
    g = feddyn.client_gradient_update({"w": v(0.1, -0.2)}, {"w": v(1.5, 0.5)}, {"w": v(1.0, 1.0)}, 0.1)
    assert g["w"].tolist() == pytest.approx([0.05, -0.15])


def test_the_servers_update_by_hand() -> None:
    server = {"w": v(1.0, 2.0), "n": v(4.0)}
    thetas = [{"w": v(1.5, 1.0), "n": v(4.0)}, {"w": v(0.5, 2.0), "n": v(6.0)}]
    new, h = feddyn.server_update(server, {"w": v(0.2, 0.0)}, thetas, alpha=0.5, num_clients=10)
    assert h["w"].tolist() == pytest.approx([0.2, 0.05]) and list(h) == ["w"]
    assert new["w"].tolist() == pytest.approx([0.6, 1.4]) and new["n"].tolist() == [5.0]


def test_the_local_step_adds_minus_g_and_the_pull_to_the_server_model() -> None:
    x = {"w": np.array([1.0, 2.0], np.float32)}
    start = ClientStart(
        torch.nn.Linear(1, 1),
        x,
        {},
        {feddyn.GRAD: {"w": np.array([0.3, -0.1], np.float32)}},
        None,
        {feddyn.ALPHA: 0.5},
        torch.device("cpu"),  # type: ignore[arg-type]
    )
    offset, proximal = feddyn.begin(start).terms
    assert isinstance(offset, Offset) and offset.values["w"].tolist() == pytest.approx([-0.3, 0.1])
    assert (
        isinstance(proximal, Proximal) and proximal.mu == 0.5 and proximal.anchor["w"].tolist() == [1.0, 2.0]
    )
    grads, params = {"w": torch.zeros(2)}, {"w": torch.tensor([2.0, 2.0])}
    for term in (offset, proximal):
        term.add_to(grads, params)
    assert grads["w"].tolist() == pytest.approx([-0.3 + 0.5 * 1.0, 0.1 + 0.0])  # -g + alpha (w - x)


class _Grid:
    def get_node_ids(self) -> list[int]:
        return [7, 8]


@pytest.mark.usefixtures("task_identity")
def test_the_strategy_sends_alpha_and_aggregates_the_worked_example() -> None:
    strategy = feddyn.FedDyn(
        alpha=0.5,
        context=StrategyContext(parse_scenario(""), 10, ("w",)),
        fraction_train=1.0,
        min_train_nodes=1,
        min_available_nodes=1,
    )
    strategy.h = {"w": v(0.2, 0.0)}  # as if earlier rounds had moved it
    sent = list(
        strategy.configure_train(1, keys.to_record({"w": v(1.0, 2.0), "n": v(4.0)}), ConfigRecord(), _Grid())
    )  # type: ignore[arg-type]
    assert all(m.content.config_records[keys.CONFIG][feddyn.ALPHA] == 0.5 for m in sent)

    def reply(to: Message, theta: dict[str, np.ndarray]) -> Message:
        metrics = MetricRecord({keys.NUM_EXAMPLES: 1.0, keys.TRAIN_LOSS: 1.0})
        return Message(RecordDict({keys.ARRAYS: keys.to_record(theta), keys.METRICS: metrics}), reply_to=to)

    new, _ = strategy.aggregate_train(
        1, [reply(sent[0], {"w": v(1.5, 1.0), "n": v(4.0)}), reply(sent[1], {"w": v(0.5, 2.0), "n": v(6.0)})]
    )
    assert new is not None and keys.to_numpy(new)["w"].tolist() == pytest.approx([0.6, 1.4])
    assert strategy.h["w"].tolist() == pytest.approx([0.2, 0.05])


@pytest.mark.usefixtures("task_identity")
def test_a_client_keeps_its_gradient_and_starts_the_next_round_from_it() -> None:
    toml, context, x = scenario_toml("feddyn"), node(2), initial_model()
    first = app.train(message(toml, x, 1, config={feddyn.ALPHA: 0.1}), context)
    y1 = reply_model(first)
    g1 = keys.to_numpy(context.state.array_records[keys.state_record(feddyn.GRAD)])
    for k in g1:  # g starts at 0: g+ = -alpha (y - x)
        assert g1[k] == pytest.approx(-0.1 * (y1[k] - x[k]), abs=1e-7)
    app.train(message(toml, y1, 2, config={feddyn.ALPHA: 0.1}), context)
    g2 = keys.to_numpy(context.state.array_records[keys.state_record(feddyn.GRAD)])
    assert any(not np.allclose(g2[k], g1[k]) for k in g1)  # round 2 moved on from round 1's
