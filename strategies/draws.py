"""The round's sample, drawn from the seed: m of N without replacement, or Poisson.

Pure functions of (seed, stage, round, attempt): every process that asks gets the same
partition ids, and a retried round (``faults.round_retries``) draws a new sample.
"""

from __future__ import annotations

import numpy as np

from fedsim.scenario.seeding import generator


def sample_partitions(
    seed: int, stage: str, server_round: int, population: int, size: int, attempt: int = 0
) -> list[int]:
    """``size`` distinct partition ids out of ``range(population)``, sorted.

    A retried round (``attempt`` > 0, see ``faults.round_retries``) draws a new sample.
    """
    rng = generator(seed, "sample", stage, server_round, *retry_path(attempt))
    return sorted(int(p) for p in rng.choice(population, size=size, replace=False))


def poisson_partitions(
    seed: int, stage: str, server_round: int, population: int, rate: float, attempt: int = 0
) -> list[int]:
    """Each of ``range(population)`` independently with probability ``rate``, sorted."""
    rng = generator(seed, "sample", stage, server_round, *retry_path(attempt))
    return [int(p) for p in np.flatnonzero(rng.random(population) < rate)]


def retry_path(attempt: int) -> tuple[int | str, ...]:
    """Extends a random stream's path for a retried round; the first attempt keeps the plain stream."""
    return ("retry", attempt) if attempt else ()
