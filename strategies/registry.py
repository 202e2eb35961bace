"""Scenario strategy names -> (parameters, builder), wrapped for seeded sampling and privacy.

Every strategy but SCAFFOLD is Flower's own Message-API strategy, told to use every
node it is shown; :class:`SeededSampling` decides which nodes those are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from flwr.serverapp.strategy import (
    Bulyan,
    FedAdagrad,
    FedAdam,
    FedAvg,
    FedAvgM,
    FedMedian,
    FedProx,
    FedTrimmedAvg,
    FedYogi,
    Krum,
    MultiKrum,
    QFedAvg,
    Strategy,
)

from fedsim.scenario import Scenario
from strategies import params as p
from strategies.placement import Placement
from strategies.privacy import wrap_central
from strategies.sampling import SeededSampling, cohort_size
from strategies.scaffold import Scaffold

# Sampling is ours: Flower's strategy sees exactly the sampled nodes and takes all.
_TAKE_ALL: dict[str, Any] = {
    "fraction_train": 1.0,
    "fraction_evaluate": 1.0,
    "min_train_nodes": 1,
    "min_evaluate_nodes": 1,
    "min_available_nodes": 1,
}

P = TypeVar("P")


@dataclass(frozen=True)
class Entry(Generic[P]):
    params: type[P]  # the ``[strategy.<name>]`` table
    build: Callable[[Scenario, P, int], Strategy]  # scenario, params, clients


def _entry(params: type[P], build: Callable[[Scenario, P, int], Strategy]) -> Entry[Any]:
    """An entry whose builder is type-checked against its parameters class."""
    return Entry(params, build)


def _multikrum(s: Scenario, q: p.MultiKrumParams, n: int) -> Strategy:
    f = s.assumed_malicious(n)
    m = q.num_nodes_to_select if q.num_nodes_to_select is not None else s.train_cohort(n) - f
    return MultiKrum(num_malicious_nodes=f, num_nodes_to_select=m, **_TAKE_ALL)


STRATEGIES: dict[str, Entry[Any]] = {
    "fedavg": _entry(p.FedAvgParams, lambda s, q, n: FedAvg(**_TAKE_ALL)),
    "fedprox": _entry(p.FedProxParams, lambda s, q, n: FedProx(proximal_mu=q.proximal_mu, **_TAKE_ALL)),
    "fedavgm": _entry(
        p.FedAvgMParams,
        lambda s, q, n: FedAvgM(
            server_learning_rate=q.server_learning_rate, server_momentum=q.server_momentum, **_TAKE_ALL
        ),
    ),
    "fedadam": _entry(
        p.FedAdamParams,
        lambda s, q, n: FedAdam(
            eta=q.eta, eta_l=s.client.lr, beta_1=q.beta_1, beta_2=q.beta_2, tau=q.tau, **_TAKE_ALL
        ),
    ),
    "fedyogi": _entry(
        p.FedYogiParams,
        lambda s, q, n: FedYogi(
            eta=q.eta, eta_l=s.client.lr, beta_1=q.beta_1, beta_2=q.beta_2, tau=q.tau, **_TAKE_ALL
        ),
    ),
    "fedadagrad": _entry(
        p.FedAdagradParams, lambda s, q, n: FedAdagrad(eta=q.eta, eta_l=s.client.lr, tau=q.tau, **_TAKE_ALL)
    ),
    # QFedAvg estimates the Lipschitz constant as 1 / (the clients' learning rate).
    "qfedavg": _entry(
        p.QFedAvgParams, lambda s, q, n: QFedAvg(client_learning_rate=s.client.lr, q=q.q, **_TAKE_ALL)
    ),
    "fedmedian": _entry(p.FedMedianParams, lambda s, q, n: FedMedian(**_TAKE_ALL)),
    "fedtrimmedavg": _entry(p.FedTrimmedAvgParams, lambda s, q, n: FedTrimmedAvg(beta=q.beta, **_TAKE_ALL)),
    "krum": _entry(
        p.KrumParams, lambda s, q, n: Krum(num_malicious_nodes=s.assumed_malicious(n), **_TAKE_ALL)
    ),
    "multikrum": _entry(p.MultiKrumParams, _multikrum),
    "bulyan": _entry(
        p.BulyanParams, lambda s, q, n: Bulyan(num_malicious_nodes=s.assumed_malicious(n), **_TAKE_ALL)
    ),
    "scaffold": _entry(
        p.ScaffoldParams,
        lambda s, q, n: Scaffold(n, server_learning_rate=q.server_learning_rate, **_TAKE_ALL),
    ),
}


def build_strategy(scenario: Scenario, placement: Placement) -> SeededSampling:
    """The scenario's strategy over ``placement``'s partitions and nodes.

    With central differential privacy it sits behind the DP mechanism (strategies/privacy.py);
    with Poisson sampling each client trains with probability ``fraction_train``.
    """
    cfg = scenario.strategy
    population = placement.population
    strategy = STRATEGIES[cfg.name].build(scenario, cfg.params, population)
    privacy = scenario.privacy
    if privacy is not None and privacy.mode == "central":
        strategy = wrap_central(scenario, strategy, population)
    poisson = privacy is not None and privacy.sampling == "poisson"
    return SeededSampling(
        strategy,
        placement,
        seed=scenario.seed,
        train_size=cohort_size(cfg.fraction_train, population, cfg.min_train_clients),
        evaluate_size=cohort_size(cfg.fraction_evaluate, population, 1),
        train_rate=cfg.fraction_train if poisson else None,
    )
