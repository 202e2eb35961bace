"""One SuperNode per partition; each other node is left idle with the reason (no Flower needed)."""

from __future__ import annotations

from fedsim.sim.discovery import Holding, choose, idle_lines


def test_an_extra_node_holding_a_taken_partition_is_left_idle() -> None:
    answers: dict[int, Holding | str] = {7: Holding(0, 2), 5: Holding(1, 2), 9: Holding(1, 2)}
    chosen = choose(answers, expected=2)
    assert chosen == {5: 1, 7: 0}  # the lowest node id per partition, whatever the order of answers
    assert idle_lines([7, 5, 9], answers, chosen, 2) == [
        "node 9 left idle: partition 1 is already held by node 5"
    ]


def test_a_node_of_another_split_a_failed_one_and_a_silent_one_are_left_idle() -> None:
    answers: dict[int, Holding | str] = {
        1: Holding(0, 2),
        2: Holding(1, 2),
        3: Holding(2, 3),
        4: "ClientApp crashed",
    }
    chosen = choose(answers, expected=2)
    assert chosen == {1: 0, 2: 1}
    assert idle_lines([1, 2, 3, 4, 5], answers, chosen, 2) == [
        "node 3 left idle: it holds partition 2 of 3, but this run has 2 clients",
        "node 4 left idle: its query failed: ClientApp crashed",
        "node 5 left idle: it has not answered yet (still starting, or stale)",
    ]


def test_partitions_of_another_split_cover_nothing() -> None:
    answers: dict[int, Holding | str] = {1: Holding(0, 3), 2: Holding(1, 3)}
    assert choose(answers, expected=2) == {}
