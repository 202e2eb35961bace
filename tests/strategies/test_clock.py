"""The virtual clock's arithmetic, with numbers worked out by hand."""

from __future__ import annotations

import math

import pytest

from strategies.clock import select, task_s, transfer_s


def test_a_megabyte_at_eight_megabits_per_second_takes_one_second() -> None:
    assert transfer_s(1_000_000, 8.0) == 1.0
    assert transfer_s(1_000_000, math.inf) == 0.0


def test_a_task_is_download_then_steps_then_upload() -> None:
    # 2 MB down at 16 Mbit/s: 1 s; 60 steps at 20 steps/s: 3 s; 0.5 MB up at 1 Mbit/s: 4 s.
    assert task_s(2_000_000, 60, 500_000, compute=20.0, downlink_mbps=16.0, uplink_mbps=1.0) == 8.0


def test_without_deadline_the_round_waits_for_the_slowest() -> None:
    chosen = select([3.0, 9.0, 1.0], None, None)
    assert chosen.kept == (2, 0, 1) and chosen.late == () and chosen.duration_s == 9.0


def test_a_deadline_drops_the_late_and_the_round_lasts_until_it() -> None:
    chosen = select([3.0, 9.0, 1.0, 5.0], 6.0, None)
    assert chosen.kept == (2, 0, 3) and chosen.late == (1,) and chosen.duration_s == 6.0


def test_a_deadline_nobody_misses_ends_the_round_at_the_last_reply() -> None:
    assert select([3.0, 1.0], 6.0, None).duration_s == 3.0


def test_over_selection_keeps_the_first_arrivals_and_ends_at_the_last_kept() -> None:
    chosen = select([3.0, 9.0, 1.0, 5.0, 4.0], None, 3)
    assert chosen.kept == (2, 0, 4) and chosen.late == (3, 1) and chosen.duration_s == 4.0


def test_over_selection_short_of_its_count_waits_out_the_deadline() -> None:
    chosen = select([3.0, 9.0, 8.0], 5.0, 2)
    assert chosen.kept == (0,) and chosen.duration_s == 5.0


def test_ties_go_to_the_lower_index() -> None:
    assert select([2.0, 2.0, 2.0], None, 2).kept == (0, 1)


@pytest.mark.parametrize("arrivals", [[], [0.0]])
def test_an_empty_or_instant_round_lasts_nothing(arrivals: list[float]) -> None:
    assert select(arrivals, None, None).duration_s == 0.0
