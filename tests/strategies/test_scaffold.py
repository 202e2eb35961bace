"""SCAFFOLD (strategies/scaffold.py): its control-variate algebra against a two-client example
worked out by hand, its server half, and its client half through the real ClientApp.

Setting: x = [1, 2], c = [0.1, -0.2], lr = 0.1, K = 5 local steps (K * lr = 0.5).
Client A: c_A = [0, 0],     y_A = [0.5, 2.5], 1 example.
Client B: c_B = [0.2, 0.2], y_B = [1.5, 1.0], 3 examples.
Option II, c_i+ = c_i - c + (x - y_i) / (K lr):
  c_A+ = [0, 0] - [0.1, -0.2] + [0.5, -0.5] / 0.5     = [0.9, -0.8],  dc_A = [0.9, -0.8]
  c_B+ = [0.2, 0.2] - [0.1, -0.2] + [-0.5, 1.0] / 0.5 = [-0.9, 2.4],  dc_B = [-1.1, 2.2]
Server with N = 10 clients, eta_g = 0.5:
  mean dy = (1 * [-0.5, 0.5] + 3 * [0.5, -1.0]) / 4 = [0.25, -0.625]
  x+ = [1, 2] + 0.5 * [0.25, -0.625]             = [1.125, 1.6875]
  c+ = [0.1, -0.2] + ([0.9, -0.8] + [-1.1, 2.2]) / 10 = [0.08, -0.06]
"""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import ConfigRecord, Message, MetricRecord, RecordDict

from clients import app
from fedsim import protocol as keys
from fedsim.data import load_federated
from fedsim.scenario.files import parse_scenario
from fedsim.scenario.tables import ScenarioError
from strategies import scaffold
from strategies.context import StrategyContext
from strategies.registry import check_requirements
from strategies.scaffold import Scaffold, client_control_update, server_update
from tests.clients.test_app import initial_model, message, node, reply_model, scenario_toml
from tests.strategies.test_registry import inner, scenario

to_numpy, to_record = keys.to_numpy, keys.to_record


def arrays(*values: float) -> dict[str, np.ndarray]:
    return {"w": np.array(values, dtype=np.float64)}


X, C = arrays(1.0, 2.0), arrays(0.1, -0.2)
C_A, Y_A = arrays(0.0, 0.0), arrays(0.5, 2.5)
C_B, Y_B = arrays(0.2, 0.2), arrays(1.5, 1.0)


def test_client_update_is_option_two_of_the_paper() -> None:
    new_a, delta_a = client_control_update(C_A, C, X, Y_A, steps=5, lr=0.1)
    new_b, delta_b = client_control_update(C_B, C, X, Y_B, steps=5, lr=0.1)
    assert new_a["w"] == pytest.approx([0.9, -0.8]) and delta_a["w"] == pytest.approx([0.9, -0.8])
    assert new_b["w"] == pytest.approx([-0.9, 2.4]) and delta_b["w"] == pytest.approx([-1.1, 2.2])


def test_server_moves_x_by_the_weighted_mean_update_and_c_by_the_sum_over_all_clients() -> None:
    deltas = [arrays(0.9, -0.8), arrays(-1.1, 2.2)]
    new_x, new_c = server_update(X, C, [Y_A, Y_B], [1.0, 3.0], deltas, num_clients=10, server_lr=0.5)
    assert new_x["w"] == pytest.approx([1.125, 1.6875])
    assert new_c["w"] == pytest.approx([0.08, -0.06])


def test_server_c_stays_the_mean_of_every_clients_c_i() -> None:
    """Clients not sampled keep their c_i, so c += sum(dc_i) / N keeps c = mean(c_i) over all N."""
    rng = np.random.default_rng(0)
    population, x = 5, arrays(0.0, 0.0)
    c_clients = [arrays(0.0, 0.0) for _ in range(population)]
    c = arrays(0.0, 0.0)
    for sampled in ([0, 1], [1, 3, 4], [2]):
        ys = [{"w": x["w"] + rng.normal(size=2)} for _ in sampled]
        deltas = []
        for pid, y in zip(sampled, ys, strict=True):
            c_clients[pid], delta = client_control_update(c_clients[pid], c, x, y, steps=3, lr=0.1)
            deltas.append(delta)
        x, c = server_update(x, c, ys, [1.0] * len(ys), deltas, population, server_lr=1.0)
        assert c["w"] == pytest.approx(np.mean([ci["w"] for ci in c_clients], axis=0))


def test_control_arrays_keep_their_dtype() -> None:
    x32 = {"w": np.ones(3, dtype=np.float32)}
    new, delta = client_control_update({"w": np.zeros(3, np.float32)}, x32, x32, x32, steps=2, lr=0.5)
    assert new["w"].dtype == np.float32 and delta["w"].dtype == np.float32


class _Grid:
    def __init__(self, nodes: list[int]) -> None:
        self.nodes = nodes

    def get_node_ids(self) -> list[int]:
        return self.nodes


@pytest.mark.usefixtures("task_identity")
def test_strategy_sends_c_and_aggregates_the_worked_example() -> None:
    context = StrategyContext(parse_scenario(""), 10)
    strategy = Scaffold(
        server_learning_rate=0.5,
        context=context,
        fraction_train=1.0,
        min_train_nodes=1,
        min_available_nodes=1,
    )
    strategy.c = dict(C)  # as if earlier rounds had moved it
    sent = list(strategy.configure_train(1, to_record(X), ConfigRecord(), _Grid([7, 8])))  # type: ignore[arg-type]
    assert len(sent) == 2
    assert all(to_numpy(m.content.array_records[scaffold.C])["w"] == pytest.approx([0.1, -0.2]) for m in sent)

    def reply(to: Message, y: dict[str, np.ndarray], delta: dict[str, np.ndarray], n: float) -> Message:
        metrics = MetricRecord({keys.NUM_EXAMPLES: n, keys.TRAIN_LOSS: 1.0})
        content = RecordDict(
            {keys.ARRAYS: to_record(y), scaffold.DELTA_C: to_record(delta), keys.METRICS: metrics}
        )
        return Message(content, reply_to=to)

    replies = [reply(sent[0], Y_A, arrays(0.9, -0.8), 1.0), reply(sent[1], Y_B, arrays(-1.1, 2.2), 3.0)]
    new, metrics = strategy.aggregate_train(1, replies)
    assert new is not None and metrics is not None
    assert to_numpy(new)["w"] == pytest.approx([1.125, 1.6875])
    assert strategy.c["w"] == pytest.approx([0.08, -0.06])
    assert metrics[keys.TRAIN_LOSS] == pytest.approx(1.0)


def test_the_registry_builds_it_for_the_population_with_its_server_learning_rate() -> None:
    scaffold = inner('[strategy]\nname = "scaffold"\n[strategy.params]\nserver_learning_rate = 0.5')
    assert isinstance(scaffold, Scaffold) and (scaffold.num_clients, scaffold.server_learning_rate) == (
        10,
        0.5,
    )


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[client]\nmomentum = 0.9", "client.momentum: 'scaffold' assumes plain SGD steps"),
        (
            '[client]\nupdate = "x.y:z"',
            "client.update: 'scaffold' corrects the built-in 'sgd' update's steps",
        ),
        (
            '[privacy]\nmode = "local"\nclipping_norm = 1.0\nnoise_multiplier = 0.1',
            "privacy.mode: 'local' noises the model update only; 'scaffold' also sends ['delta_c']",
        ),
        ('[privacy]\nmode = "central"\nnoise_multiplier = 0.1', "privacy.mode: 'central' noises the mean"),
    ],
)
def test_what_option_two_assumes_is_refused(text: str, says: str) -> None:
    with pytest.raises(ScenarioError, match="^" + says.replace("[", r"\[").replace("]", r"\]")):
        check_requirements(scenario('[strategy]\nname = "scaffold"\n' + text))


def zeros_like(x: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.zeros_like(v) for k, v in x.items()}


@pytest.mark.usefixtures("task_identity")
def test_a_client_keeps_c_i_in_its_state_across_rounds() -> None:
    toml, context, x = scenario_toml("scaffold"), node(2), initial_model()
    loaded = parse_scenario(toml)
    samples = len(load_federated(loaded.data, loaded.seed).client(2))
    steps, lr = loaded.client.local_steps(samples), loaded.client.lr

    first = app.train(message(toml, x, 1, {scaffold.C: zeros_like(x)}), context)
    y1 = reply_model(first)
    c_1 = to_numpy(context.state.array_records[keys.state_record(scaffold.C_I)])
    for k in x:  # c_i starts at 0 and c = 0: c_i+ = (x - y) / (K lr), and dc_i = c_i+
        assert c_1[k] == pytest.approx((x[k] - y1[k]) / (steps * lr), abs=1e-6)
        assert to_numpy(first.content.array_records[scaffold.DELTA_C])[k] == pytest.approx(c_1[k])

    c = {k: np.full_like(v, 0.01) for k, v in x.items()}
    second = app.train(message(toml, y1, 2, {scaffold.C: c}), context)
    y2 = reply_model(second)
    c_2 = to_numpy(context.state.array_records[keys.state_record(scaffold.C_I)])
    for k in x:  # round 2 starts from the kept c_i, not from 0
        assert c_2[k] == pytest.approx(c_1[k] - c[k] + (y1[k] - y2[k]) / (steps * lr), abs=1e-6)
        assert to_numpy(second.content.array_records[scaffold.DELTA_C])[k] == pytest.approx(
            c_2[k] - c_1[k], abs=1e-6
        )


@pytest.mark.usefixtures("task_identity")
def test_the_correction_changes_the_local_model() -> None:
    toml, x = scenario_toml("scaffold"), initial_model()
    plain = reply_model(app.train(message(toml, x, 1, {scaffold.C: zeros_like(x)}), node(0)))
    pulled = reply_model(
        app.train(message(toml, x, 1, {scaffold.C: {k: np.full_like(v, 0.5) for k, v in x.items()}}), node(0))
    )
    assert not np.allclose(plain["1.weight"], pulled["1.weight"])
