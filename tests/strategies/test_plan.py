"""A round's plan: faults, stragglers and speeds drawn from the seed, and the messages it shapes."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord

from fedsim import protocol as keys
from fedsim.scenario.files import parse_scenario
from fedsim.scenario.sections import Scenario
from strategies.draws import sample_partitions
from strategies.placement import Placement
from strategies.plan import ClientPlan, plan_round
from strategies.registry import build_strategy

BASE = """
seed = 5
[data]
dataset = "synthetic"
partition = "natural"
[data.params]
devices = 20
[model]
name = "logreg"
[client]
local_epochs = 4
batch_size = 10
[strategy]
fraction_train = 0.5
"""


def scenario(*overrides: str) -> Scenario:
    return parse_scenario(BASE, overrides)


def test_the_plan_is_a_function_of_seed_round_and_attempt() -> None:
    s = scenario("faults.failure_rate=0.3", "stragglers.fraction=0.4")
    first = plan_round(s, 3, 0, 20)
    assert first == plan_round(s, 3, 0, 20)
    assert first.sampled == sample_partitions(5, "train", 3, 20, 10)  # as plain seeded sampling draws
    assert plan_round(s, 3, 1, 20).sampled != first.sampled  # a retry draws a new sample
    assert plan_round(s, 4, 0, 20) != first


def test_fault_kinds_exclude_each_other_and_come_at_their_rates() -> None:
    s = scenario("faults.failure_rate=0.2", "faults.crash_rate=0.1", "faults.dropout_rate=0.3")
    kinds = Counter(c.fault for r in range(1, 401) for c in plan_round(s, r, 0, 20).clients)
    drawn = sum(kinds.values())  # 400 rounds x 10 clients, one kind (or none) each
    assert set(kinds) == {"", "fail", "crash", "dropout"} and drawn == 4000
    for kind, rate in (("fail", 0.2), ("crash", 0.1), ("dropout", 0.3), ("", 0.4)):
        assert kinds[kind] / drawn == pytest.approx(rate, abs=0.03)


def test_a_client_fault_depends_on_its_partition_not_on_who_else_is_sampled() -> None:
    s = scenario("faults.failure_rate=0.5")
    bigger = parse_scenario(BASE, ("faults.failure_rate=0.5", "strategy.fraction_train=1.0"))
    for r in range(1, 20):
        everyone = {c.partition: c.fault for c in plan_round(bigger, r, 0, 20).clients}
        assert all(everyone[c.partition] == c.fault for c in plan_round(s, r, 0, 20).clients)


def test_without_faults_or_stragglers_every_client_runs_the_plain_round() -> None:
    plan = plan_round(scenario(), 1, 0, 20)
    assert all(c == ClientPlan(c.partition, epochs=4) for c in plan.clients)
    assert plan.trains() == plan.sampled and all(c.config() == {} for c in plan.clients)


def test_stragglers_are_the_fraction_of_the_sample_with_fewer_epochs() -> None:
    s = scenario("stragglers.fraction=0.3")
    epochs = []
    for r in range(1, 101):
        plan = plan_round(s, r, 0, 20)
        stragglers = [c for c in plan.clients if c.straggler]
        assert len(stragglers) == plan.stragglers == 3  # 0.3 of 10 sampled
        assert all(c.epochs == 4 for c in plan.clients if not c.straggler)
        epochs += [c.epochs for c in stragglers]
        assert all(c.config() == {keys.LOCAL_EPOCHS: c.epochs} for c in stragglers)
    assert set(epochs) == {1, 2, 3, 4}  # uniform in [1, E]


def test_dropped_stragglers_get_no_message_partial_ones_do() -> None:
    dropping = plan_round(scenario("stragglers.fraction=0.3", "stragglers.policy=drop"), 2, 0, 20)
    partial = plan_round(scenario("stragglers.fraction=0.3", "stragglers.policy=partial"), 2, 0, 20)
    stragglers = {c.partition for c in dropping.clients if c.straggler}
    assert dropping.trains() == [p for p in dropping.sampled if p not in stragglers]
    assert partial.trains() == partial.sampled and partial.sampled == dropping.sampled


def test_only_online_clients_are_sampled_and_all_of_them_when_too_few() -> None:
    s = scenario("strategy.fraction_train=0.25")  # 5 of 20
    online = np.zeros(20, dtype=bool)
    online[[2, 3, 5, 7, 11, 13, 17]] = True
    sampled = plan_round(s, 1, 0, 20, online).sampled
    assert len(sampled) == 5 and set(sampled) <= {2, 3, 5, 7, 11, 13, 17}
    online[:] = False
    online[[4, 9]] = True
    assert plan_round(s, 1, 0, 20, online).sampled == [4, 9]


def test_everyone_online_samples_as_without_availability() -> None:
    s = scenario("strategy.fraction_train=0.25")
    assert plan_round(s, 3, 0, 20, np.ones(20, dtype=bool)).sampled == plan_round(s, 3, 0, 20).sampled


def test_over_selection_samples_its_share_more() -> None:
    s = scenario("strategy.fraction_train=0.25", "strategy.over_selection=0.3")  # ceil(5 * 1.3) = 7
    assert len(plan_round(s, 1, 0, 20).sampled) == 7


def test_configured_messages_carry_each_clients_part_only() -> None:
    s = scenario("faults.failure_rate=0.3", "faults.crash_rate=0.2", "stragglers.fraction=0.3")
    nodes = {100 + p: p for p in range(20)}
    strategy = build_strategy(s, Placement.fixed(nodes))
    plans = (plan_round(s, r, 0, 20) for r in range(1, 50))
    plan = next(p for p in plans if {"fail", "crash"} <= {c.fault for c in p.clients})
    arrays = ArrayRecord({"w": Array(np.zeros(2, np.float32))})
    grid = SimpleNamespace(get_node_ids=lambda: list(nodes))
    messages = list(strategy.configure_train(plan.server_round, arrays, ConfigRecord({"k": "v"}), grid, plan))  # type: ignore[arg-type]
    assert sorted(m.metadata.dst_node_id - 100 for m in messages) == plan.trains()
    for message in messages:
        client = plan.of(message.metadata.dst_node_id - 100)
        config = message.content.config_records[keys.CONFIG]
        assert config.get(keys.FAULT) == (client.fault or None)
        assert config.get(keys.LOCAL_EPOCHS) == (client.epochs if client.straggler else None)
        assert config["k"] == "v" and message.content.array_records[keys.ARRAYS] is arrays


def test_dropping_every_straggler_must_leave_min_train_clients() -> None:
    from fedsim.scenario.tables import ScenarioError

    with pytest.raises(ScenarioError, match=r"stragglers.fraction: policy 'drop' keeps 2 of the 10"):
        scenario(
            "stragglers.fraction=0.8", "stragglers.policy=drop", "strategy.min_train_clients=3"
        ).check_population(20)
    scenario(
        "stragglers.fraction=0.8", "stragglers.policy=partial", "strategy.min_train_clients=3"
    ).check_population(20)
