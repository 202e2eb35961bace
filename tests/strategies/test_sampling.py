"""Seeded sampling and partition-ordered aggregation around Flower's FedAvg."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, Message, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAvg

from fedsim.scenario.counts import cohort_size
from fedsim.scenario.files import parse_scenario
from strategies.draws import sample_partitions
from strategies.placement import Placement
from strategies.registry import build_strategy
from strategies.sampling import SeededSampling


@pytest.mark.parametrize(
    ("fraction", "population", "minimum", "size"),
    [
        (0.1, 100, 1, 10),
        (0.29, 100, 1, 29),
        (0.1, 5, 2, 2),
        (0.5, 3, 1, 1),
        (1.0, 7, 1, 7),
        (0.0, 10, 3, 0),
        (0.01, 10, 20, 10),
    ],
)
def test_cohort_size(fraction: float, population: int, minimum: int, size: int) -> None:
    assert cohort_size(fraction, population, minimum) == size


def test_sampling_is_a_function_of_seed_stage_and_round() -> None:
    a = sample_partitions(0, "train", 3, 100, 10)
    assert a == sample_partitions(0, "train", 3, 100, 10)
    assert a == sorted(set(a)) and len(a) == 10 and all(0 <= p < 100 for p in a)
    assert a != sample_partitions(1, "train", 3, 100, 10)
    assert a != sample_partitions(0, "train", 4, 100, 10)
    assert a != sample_partitions(0, "evaluate", 3, 100, 10)


def test_every_client_is_sampled_about_equally_often() -> None:
    counts = np.zeros(20)
    for r in range(1, 2001):
        counts[sample_partitions(0, "train", r, 20, 5)] += 1
    assert counts.min() > 0.8 * 500 and counts.max() < 1.2 * 500  # 2000 rounds x 5/20


def reply(node: int, value: float, examples: int) -> Message:
    content = RecordDict(
        {
            "arrays": ArrayRecord({"w": Array(np.array([value], dtype=np.float32))}),
            "metrics": MetricRecord({"num-examples": examples, "train_loss": value}),
        }
    )
    message = Message(content, dst_node_id=0, message_type="train")
    message.metadata.__dict__["_src_node_id"] = node
    return message


def test_replies_reach_the_strategy_in_partition_order() -> None:
    seen: list[int] = []

    class Spy(FedAvg):
        def aggregate_train(self, server_round: int, replies: Any) -> Any:
            seen.extend(m.metadata.src_node_id for m in replies)
            return super().aggregate_train(server_round, replies)

    # nodes 70, 50, 60 hold partitions 2, 0, 1
    strategy = SeededSampling(
        Spy(), Placement.fixed({70: 2, 50: 0, 60: 1}), seed=0, train_size=3, evaluate_size=0
    )
    arrays, metrics = strategy.aggregate_train(
        1, [reply(70, 4.0, 3), reply(60, 0.0, 1), reply(50, 0.0, 0 + 1)]
    )
    assert seen == [50, 60, 70]
    # FedAvg by hand: (1*0 + 1*0 + 3*4) / 5 = 2.4, and the same weighting for the loss
    assert arrays is not None and metrics is not None
    assert arrays["w"].numpy().tolist() == pytest.approx([2.4])
    assert metrics["train_loss"] == pytest.approx(2.4)


def test_configure_train_addresses_exactly_the_sampled_nodes() -> None:
    nodes = {1000 + p: p for p in range(10)}
    grid = SimpleNamespace(get_node_ids=lambda: list(nodes))
    scenario = parse_scenario("seed = 4\n[data]\nnum_clients = 10\n[strategy]\nfraction_train = 0.3")
    strategy = build_strategy(scenario, Placement.fixed(nodes))
    messages = list(strategy.configure_train(2, ArrayRecord(), _config(), grid))  # type: ignore[arg-type]
    expected = [1000 + p for p in sample_partitions(4, "train", 2, 10, 3)]
    assert sorted(m.metadata.dst_node_id for m in messages) == expected
    assert list(strategy.configure_evaluate(2, ArrayRecord(), _config(), grid)) == []  # type: ignore[arg-type]


def test_fedprox_sends_its_mu() -> None:
    nodes = {1: 0, 2: 1}
    scenario = parse_scenario(
        '[data]\nnum_clients = 2\n[strategy]\nname = "fedprox"\n[strategy.params]\nproximal_mu = 0.25'
    )
    strategy = build_strategy(scenario, Placement.fixed(nodes))
    grid = SimpleNamespace(get_node_ids=lambda: list(nodes))
    (message,) = strategy.configure_train(1, ArrayRecord(), _config(), grid)  # type: ignore[arg-type]
    assert message.content["config"]["proximal-mu"] == 0.25


def _config() -> Any:
    from flwr.app import ConfigRecord

    return ConfigRecord({})


def test_a_pool_puts_each_stages_sample_on_its_nodes_and_names_the_partitions() -> None:
    pool = [31, 7, 12]  # three nodes stand in for 10 clients
    grid = SimpleNamespace(get_node_ids=lambda: pool)
    scenario = parse_scenario(
        "seed = 4\n[data]\nnum_clients = 10\n[strategy]\nfraction_train = 0.3\nfraction_evaluate = 0.2"
    )
    strategy = build_strategy(scenario, Placement.pool(pool, 10))
    sent = list(strategy.configure_train(2, ArrayRecord(), _config(), grid))  # type: ignore[arg-type]
    sample = sample_partitions(4, "train", 2, 10, 3)
    # the i-th sampled partition goes to the i-th node (in node-id order: 7, 12, 31)
    addressed = sorted((m.metadata.dst_node_id, m.content["config"]["partition-id"]) for m in sent)
    assert addressed == list(zip([7, 12, 31], sample, strict=True))
    assert strategy.partition_of == dict(zip([7, 12, 31], sample, strict=True))
    asked = list(strategy.configure_evaluate(2, ArrayRecord(), _config(), grid))  # type: ignore[arg-type]
    evaluated = sample_partitions(4, "evaluate", 2, 10, 2)
    addressed = sorted((m.metadata.dst_node_id, m.content["config"]["partition-id"]) for m in asked)
    assert addressed == list(zip([7, 12], evaluated, strict=True))


def test_nodes_holding_their_own_partition_get_messages_that_name_none() -> None:
    nodes = {1000 + p: p for p in range(4)}
    grid = SimpleNamespace(get_node_ids=lambda: list(nodes))
    scenario = parse_scenario("[data]\nnum_clients = 4\n[strategy]\nfraction_train = 0.5")
    strategy = build_strategy(scenario, Placement.fixed(nodes))
    sent = list(strategy.configure_train(1, ArrayRecord(), _config(), grid))  # type: ignore[arg-type]
    assert sent and all("partition-id" not in m.content["config"] for m in sent)
