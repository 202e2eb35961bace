"""Head counts: how many clients a round samples, and how many of them an attack controls.

Plain arithmetic, free of Flower and torch, so the scenario loader can check a
strategy's assumptions (Krum's ``n > 2f + 2``) without importing either.
"""

from __future__ import annotations

import math


def cohort_size(fraction: float, population: int, minimum: int) -> int:
    """``max(minimum, floor(fraction * population))``, at most the population; 0 if fraction is 0."""
    if fraction == 0:
        return 0
    # The epsilon keeps e.g. 0.29 * 100 = 28.999999999999996 from flooring to 28.
    return min(population, max(minimum, math.floor(fraction * population + 1e-9)))


def malicious_count(fraction: float, population: int) -> int:
    """How many of the ``population`` clients are malicious: ``floor(fraction * population)``."""
    return math.floor(fraction * population + 1e-9)


def expected_malicious(cohort: int, malicious: int, population: int) -> int:
    """Malicious clients a robust rule should expect among ``cohort`` sampled ones.

    The mean of the hypergeometric draw, rounded up: exact when every client trains
    each round, and the usual choice of ``f`` for Krum and Bulyan otherwise.
    """
    return math.ceil(cohort * malicious / population - 1e-9)


def straggler_count(fraction: float, cohort: int) -> int:
    """Stragglers among ``cohort`` sampled clients: ``fraction`` of them, rounded half up."""
    return math.floor(fraction * cohort + 0.5)
