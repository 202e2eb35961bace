"""Asynchronous aggregation's pure parts with numbers worked out by hand: staleness weights,
FedBuff's buffered step, FedAsync's mixing, and the schedule of who trains when."""

from __future__ import annotations

import numpy as np
import pytest

from fedsim.scenario.devices import DevicesConfig, Distribution
from fedsim.scenario.files import parse_scenario
from fedsim.scenario.tables import ScenarioError
from strategies.async_schedule import NobodyOnline, schedule
from strategies.asynchronous import Update, staleness_weight
from strategies.devices import draw
from strategies.fedasync import FedAsync
from strategies.fedbuff import FedBuff
from strategies.registry import build_async, check_requirements, is_async


def test_staleness_weights_follow_xie_et_al() -> None:
    assert staleness_weight("constant", 7) == 1.0
    assert staleness_weight("polynomial", 3, a=0.5) == pytest.approx(0.5)  # (3 + 1) ** -0.5
    assert staleness_weight("hinge", 4, a=0.5, b=4) == 1.0
    assert staleness_weight("hinge", 8, a=0.5, b=4) == pytest.approx(1 / 3)  # 1 / (0.5 * 4 + 1)
    with pytest.raises(ValueError, match="at least 0"):
        staleness_weight("constant", -1)


def update(model: float, base: float, staleness: int) -> Update:
    return Update({"w": np.array([model])}, {"w": np.array([base])}, staleness, 10, 0)


def test_fedbuff_steps_by_the_staleness_weighted_mean_of_the_deltas() -> None:
    strategy = FedBuff(buffer_size=2, max_concurrency=4, server_lr=0.5)
    # deltas +2 (fresh, weight 1) and -6 (3 stale, weight 1/2): mean (2 - 3) / 2 = -0.5; times 0.5
    new = strategy.aggregate({"w": np.array([10.0])}, [update(3.0, 1.0, 0), update(0.0, 6.0, 3)])
    assert new["w"][0] == pytest.approx(10.0 - 0.25)


def test_fedasync_mixes_each_update_by_its_staleness() -> None:
    strategy = FedAsync(alpha=0.5, staleness="polynomial", a=1.0)
    # alpha_t = 0.5 * (1 + 1) ** -1 = 0.25: 0.75 * 8 + 0.25 * 4 = 7
    assert strategy.aggregate({"w": np.array([8.0])}, [update(4.0, 0.0, 1)])["w"][0] == pytest.approx(7.0)
    assert strategy.aggregate({"w": np.array([8.0])}, [])["w"][0] == 8.0  # a failed client's slot


def test_a_buffer_larger_than_the_clients_training_at_once_is_refused() -> None:
    with pytest.raises(ValueError, match="buffer_size 5 needs at least as many"):
        FedBuff(buffer_size=5, max_concurrency=2).check()


def test_the_schedule_applies_updates_in_virtual_arrival_order() -> None:
    devices = draw(DevicesConfig(), 0, 3)
    durations = {0: 5.0, 1: 1.0, 2: 3.0}  # seconds a task takes on each client
    steps = schedule(devices, durations.__getitem__, seed=0, buffer_size=1, concurrency=3)
    first = [next(steps) for _ in range(4)]
    # All three start at 0 from version 0; client 1 lands at 1 and restarts with version 1 (lands at 2),
    # again with version 2 (lands at 3, tied with client 2's first: the earlier task goes first).
    assert [(s.time_s, s.applied[0].partition, s.applied[0].version) for s in first] == [
        (1.0, 1, 0),
        (2.0, 1, 1),
        (3.0, 2, 0),
        (3.0, 1, 2),
    ]
    assert sorted(t.partition for t in first[0].started) == [0, 1, 2]
    assert [t.version for s in first for t in s.started] == [0, 0, 0, 1, 2, 3]


def test_a_full_buffer_makes_a_version_and_the_clients_started_then_get_it() -> None:
    devices = draw(DevicesConfig(), 0, 4)
    steps = schedule(devices, lambda p: float(p + 1), seed=0, buffer_size=2, concurrency=2)
    one, two = next(steps), next(steps)
    assert one.version == 1 and len(one.applied) == 2 and {t.version for t in one.applied} == {0}
    assert all(t.version == 0 for t in one.started) and all(t.version == 1 for t in two.started)
    assert two.time_s > one.time_s


def test_the_same_seed_gives_the_same_schedule_and_another_seed_another() -> None:
    devices = draw(DevicesConfig(compute=Distribution("loguniform", low=1.0, high=100.0)), 0, 50)

    def run(seed: int) -> list[tuple[int, int, float]]:
        steps = schedule(devices, lambda p: 100.0 / devices.compute[p], seed, buffer_size=3, concurrency=8)
        return [(t.number, t.partition, t.arrival_s) for _ in range(20) for t in next(steps).applied]

    assert run(1) == run(1) and run(1) != run(2)


def test_offline_clients_wait_to_come_online_and_never_online_is_an_error() -> None:
    cfg = DevicesConfig(availability="daily", online_fraction=0.1, day_s=100.0)
    devices = draw(cfg, 0, 3)  # each online 10 s of every 100, from its own start
    steps = schedule(devices, lambda p: 1.0, seed=0, buffer_size=1, concurrency=1)
    for step in (next(steps) for _ in range(5)):
        task = step.applied[0]
        assert devices.online(task.start_s)[task.partition]
    never = draw(DevicesConfig(availability="daily", online_fraction=0.1, day_s=100.0), 0, 1)
    never = type(never)(
        never.compute, never.uplink_mbps, never.downlink_mbps, ((np.zeros(1), np.zeros(1)),), 100.0
    )
    with pytest.raises(NobodyOnline):
        next(schedule(never, lambda p: 1.0, seed=0, buffer_size=1, concurrency=1))


def test_a_users_async_strategy_comes_through_the_plug_in_door_with_its_params_checked() -> None:
    scenario = parse_scenario(
        '[strategy]\nname = "tests.async_plugin:Latest"\n[strategy.params]\nmax_concurrency = 3'
    )
    assert is_async(scenario) and not is_async(parse_scenario(""))
    strategy = build_async(scenario, 10)
    assert (strategy.buffer_size, strategy.max_concurrency) == (1, 3)
    assert strategy.aggregate({"w": np.zeros(1)}, [update(4.0, 0.0, 2)])["w"][0] == 4.0
    with pytest.raises(ScenarioError, match=r"strategy.params.concurrency: unknown"):
        build_async(
            parse_scenario(
                '[strategy]\nname = "tests.async_plugin:Latest"\n[strategy.params]\nconcurrency = 3'
            ),
            10,
        )


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ('privacy.mode = "local"', "privacy"),
        ("strategy.round_deadline_s = 5.0", "strategy.round_deadline_s"),
        ("faults.failure_rate = 0.1", "faults"),
        ('resources.engine = "cohort"', "resources.engine"),
    ],
)
def test_what_an_async_run_cannot_do_is_refused_naming_the_key(override: str, key: str) -> None:
    scenario = parse_scenario('[strategy]\nname = "fedbuff"', (override.replace(" = ", "="),))
    with pytest.raises(ScenarioError, match=rf"^{key}: "):
        check_requirements(scenario)
