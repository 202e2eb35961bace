"""Placement of partitions on nodes, and the pool a simulation starts."""

from __future__ import annotations

import pytest

from fedsim.scenario.files import parse_scenario
from strategies.placement import Placement
from strategies.plan import largest_stage, train_sample


def test_fixed_nodes_keep_their_partition_whatever_a_stage_samples() -> None:
    placement = Placement.fixed({70: 2, 50: 0, 60: 1})
    assert placement.place([2, 0]) == [70, 50]
    assert placement.place([1]) == [60]
    assert placement.partition_of == {70: 2, 50: 0, 60: 1} and placement.population == 3


def test_a_pool_reassigns_its_nodes_to_each_stages_partitions_in_order() -> None:
    placement = Placement.pool([9, 4, 6], population=1000)
    assert placement.place([500, 17]) == [4, 6]
    assert placement.partition_of == {4: 500, 6: 17} and placement.node_of == {500: 4, 17: 6}
    assert placement.place([3, 2, 1]) == [4, 6, 9]
    assert placement.node_of == {3: 4, 2: 6, 1: 9}


def test_a_pool_refuses_a_stage_larger_than_itself() -> None:
    with pytest.raises(ValueError, match="4 clients in one stage, but a pool of 3 nodes"):
        Placement.pool([1, 2, 3], population=10).place([0, 1, 2, 3])


@pytest.mark.parametrize(
    ("strategy", "largest"),
    [
        ("fraction_train = 0.1\nfraction_evaluate = 0.0", 10),  # 10 of 100 train
        ("fraction_train = 0.1\nfraction_evaluate = 0.25", 25),  # evaluation asks more
        ("fraction_train = 0.01\nfraction_evaluate = 0.0\nmin_train_clients = 3", 3),  # 1 of 100, at least 3
    ],
)
def test_the_pool_is_the_largest_stage_of_a_fixed_size_sample(strategy: str, largest: int) -> None:
    scenario = parse_scenario(f"[data]\nnum_clients = 100\n[strategy]\n{strategy}")
    assert largest_stage(scenario, 100) == largest


def test_the_pool_covers_every_poisson_round_and_retry() -> None:
    scenario = parse_scenario(
        "rounds = 6\n[data]\nnum_clients = 200\n[strategy]\nfraction_train = 0.05\nfraction_evaluate = 0.0\n"
        "[faults]\nround_retries = 2\n"
        "[privacy]\nmode = 'central'\nsampling = 'poisson'\nnoise_multiplier = 1.0\nclipping_norm = 1.0"
    )
    sizes = [len(train_sample(scenario, r, a, 200)) for r in range(1, 7) for a in range(3)]
    assert len(set(sizes)) > 1  # Poisson: the cohort's size varies
    assert largest_stage(scenario, 200) == max(sizes)
