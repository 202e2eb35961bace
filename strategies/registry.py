"""Scenario strategy names -> Flower's Message-API strategies, wrapped for seeded sampling.

The Flower strategy is told to use every node it is shown; :class:`SeededSampling`
decides which nodes those are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flwr.serverapp.strategy import FedAvg, FedProx, Strategy

from fedsim.scenario import Scenario, StrategyConfig
from strategies.sampling import SeededSampling, cohort_size

# Sampling is ours: Flower's strategy sees exactly the sampled nodes and takes all.
_TAKE_ALL: dict[str, Any] = {
    "fraction_train": 1.0,
    "fraction_evaluate": 1.0,
    "min_train_nodes": 1,
    "min_evaluate_nodes": 1,
    "min_available_nodes": 1,
}

FLOWER_STRATEGIES: dict[str, Callable[[StrategyConfig], Strategy]] = {
    "fedavg": lambda cfg: FedAvg(**_TAKE_ALL),
    "fedprox": lambda cfg: FedProx(proximal_mu=cfg.proximal_mu, **_TAKE_ALL),
}


def build_strategy(scenario: Scenario, partitions: Mapping[int, int]) -> SeededSampling:
    """The scenario's strategy over the nodes in ``partitions`` (node id -> partition id)."""
    cfg = scenario.strategy
    population = len(partitions)
    return SeededSampling(
        FLOWER_STRATEGIES[cfg.name](cfg),
        partitions,
        seed=scenario.seed,
        train_size=cohort_size(cfg.fraction_train, population, cfg.min_train_clients),
        evaluate_size=cohort_size(cfg.fraction_evaluate, population, 1),
    )
