from __future__ import annotations

import pytest

from fedsim.scenario.counts import cohort_size, expected_malicious, malicious_count


@pytest.mark.parametrize(
    ("fraction", "population", "minimum", "size"),
    [(0.1, 100, 1, 10), (0.29, 100, 1, 29), (0.01, 10, 2, 2), (1.0, 7, 1, 7), (0.0, 10, 3, 0)],
)
def test_cohort_size(fraction: float, population: int, minimum: int, size: int) -> None:
    assert cohort_size(fraction, population, minimum) == size


def test_malicious_count_floors() -> None:
    assert [malicious_count(0.2, n) for n in (10, 14, 15, 4)] == [2, 2, 3, 0]


def test_expected_malicious_is_the_rounded_up_mean_share_of_the_cohort() -> None:
    assert expected_malicious(cohort=10, malicious=2, population=10) == 2  # everyone trains: exact
    assert expected_malicious(cohort=10, malicious=4, population=20) == 2
    assert expected_malicious(cohort=10, malicious=5, population=20) == 3  # 2.5 -> 3
    assert expected_malicious(cohort=10, malicious=0, population=20) == 0
