"""The scenario's strategy, built through the plug-in door and wrapped for sampling and privacy.

A strategy is a plug-in (fedsim/scenario/plugins.py): a Flower ``Strategy`` subclass, or a
function returning one, called with ``[strategy.params]`` as keywords plus the
settings below that make it use every node it is shown; :class:`SeededSampling`
decides which nodes those are.  The built-ins are plug-ins too (strategies/builtin.py).
"""

from __future__ import annotations

from typing import Any

from flwr.serverapp.strategy import FedAvg, Strategy

from fedsim.scenario import plugins, signatures
from fedsim.scenario.counts import cohort_size
from fedsim.scenario.sections import Scenario
from strategies.context import StrategyContext
from strategies.placement import Placement
from strategies.privacy import wrap_central
from strategies.sampling import SeededSampling

# Sampling is ours: Flower's strategy sees exactly the sampled nodes and takes all.
TAKE_ALL: dict[str, Any] = {
    "fraction_train": 1.0,
    "fraction_evaluate": 1.0,
    "min_train_nodes": 1,
    "min_evaluate_nodes": 1,
    "min_available_nodes": 1,
}


def make_strategy(scenario: Scenario, population: int) -> Strategy:
    """The strategy ``strategy.name`` names, built with its params for ``population`` clients."""
    cfg = scenario.strategy
    target = plugins.resolve(plugins.STRATEGY, cfg.name, scenario.python_path)
    params = signatures.bind(plugins.STRATEGY, cfg.name, target, cfg.params)
    given = signatures.given(target, {**TAKE_ALL, "context": StrategyContext(scenario, population)})
    strategy = plugins.call(plugins.STRATEGY, cfg.name, target, **params, **given)
    if not isinstance(strategy, Strategy):
        raise plugins.PluginError(
            plugins.STRATEGY.key,
            f"{cfg.name!r} gave {type(strategy).__name__}, expected {plugins.STRATEGY.returns} "
            "(e.g. a subclass of FedAvg)",
        )
    privacy = scenario.privacy
    if privacy is not None and privacy.mode == "central" and not isinstance(strategy, FedAvg):
        raise plugins.PluginError(
            "privacy.mode",
            f"'central' noises the mean of the clipped updates: {cfg.name!r} must aggregate as "
            "FedAvg does (subclass it), or use mode 'local' or 'sample'",
        )
    return strategy


def build_strategy(scenario: Scenario, placement: Placement) -> SeededSampling:
    """The scenario's strategy over ``placement``'s partitions and nodes.

    With central differential privacy it sits behind the DP mechanism (strategies/privacy.py);
    with Poisson sampling each client trains with probability ``fraction_train``.
    """
    cfg = scenario.strategy
    population = placement.population
    strategy = make_strategy(scenario, population)
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
