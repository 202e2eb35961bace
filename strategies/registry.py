"""The scenario's strategy, built through the plug-in door and wrapped for sampling and privacy,
and what its algorithm declares (strategies/algorithm.py), checked against the scenario.

A strategy is a plug-in (fedsim/scenario/plugins.py): a Flower ``Strategy`` subclass, or a
function returning one, called with ``[strategy.params]`` as keywords plus the
settings below that make it use every node it is shown; :class:`SeededSampling`
decides which nodes those are.  The built-ins are plug-ins too (strategies/builtin.py and a
file per algorithm).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flwr.serverapp.strategy import FedAvg, Strategy

from fedsim.scenario import plugins, signatures
from fedsim.scenario.counts import cohort_size
from fedsim.scenario.sections import Scenario
from fedsim.scenario.tables import ScenarioError
from strategies.algorithm import PLAIN, Algorithm, declared
from strategies.asynchronous import AsyncStrategy
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


def algorithm_of(scenario: Scenario) -> Algorithm:
    """What the scenario's strategy declares for its clients (:data:`PLAIN`: nothing)."""
    return declared(plugins.resolve(plugins.STRATEGY, scenario.strategy.name, scenario.python_path)) or PLAIN


def is_async(scenario: Scenario) -> bool:
    """Whether the scenario's strategy is asynchronous (an :class:`AsyncStrategy` class)."""
    return asynchronous(scenario.strategy.name, scenario.python_path)


def asynchronous(name: str, python_path: Sequence[str] = ()) -> bool:
    """Whether strategy ``name`` is asynchronous (an :class:`AsyncStrategy` class)."""
    target = plugins.resolve(plugins.STRATEGY, name, tuple(python_path))
    return isinstance(target, type) and issubclass(target, AsyncStrategy)


# What an asynchronous run does not do (yet), and why: each a one-line refusal at preflight.
NOT_ASYNC: tuple[tuple[str, str], ...] = (
    ("privacy", "its accounting is per round of sampled clients"),
    ("strategy.round_deadline_s", "an asynchronous server has no rounds to end"),
    ("strategy.over_selection", "an asynchronous server starts clients as slots free"),
    ("strategy.fraction_evaluate", "federated evaluation samples per round; use centralized evaluation"),
    ("stragglers.fraction", "a slow client is its device's ([devices] compute)"),
    ("faults", "injected faults are drawn per round"),
    ("attack.fraction", "attackers are drawn per round"),
)


def check_async(scenario: Scenario) -> None:
    """Refuse what an asynchronous strategy cannot run with, naming the key."""
    s = scenario
    faults = s.faults.failure_rate or s.faults.crash_rate or s.faults.dropout_rate
    given = {
        "privacy": s.privacy is not None,
        "strategy.round_deadline_s": s.strategy.round_deadline_s is not None,
        "strategy.over_selection": s.strategy.over_selection > 0,
        "strategy.fraction_evaluate": s.strategy.fraction_evaluate > 0,
        "stragglers.fraction": s.stragglers.fraction > 0,
        "faults": bool(faults),
        "attack.fraction": s.attack.fraction > 0,
    }
    for key, why in NOT_ASYNC:
        if given[key]:
            raise ScenarioError(key, f"not with the asynchronous strategy {s.strategy.name!r}: {why}")
    if s.resources.engine == "cohort":
        raise ScenarioError("resources.engine", "an asynchronous strategy sends each client its own message")


def check_requirements(scenario: Scenario) -> None:
    """What the strategy's algorithm declares it needs of the scenario, refused before a run starts."""
    if is_async(scenario):
        check_async(scenario)
        return
    name = scenario.strategy.name
    spec = declared(plugins.resolve(plugins.STRATEGY, name, scenario.python_path))
    algorithm = spec or PLAIN
    needs, client = algorithm.requires, scenario.client
    if needs.plain_sgd and client.momentum > 0:
        raise ScenarioError("client.momentum", f"{name!r} assumes plain SGD steps; expected 0")
    if needs.builtin_update and client.update != "sgd":
        raise ScenarioError("client.update", f"{name!r} corrects the built-in 'sgd' update's steps")
    privacy = scenario.privacy
    if privacy is None:
        return
    if privacy.mode == "local" and algorithm.replies:
        raise ScenarioError(
            "privacy.mode",
            f"'local' noises the model update only; {name!r} also sends {sorted(algorithm.replies)}, "
            "which it would leak",
        )
    if privacy.mode == "central" and spec is not None and not spec.central_dp:
        raise ScenarioError(
            "privacy.mode",
            f"'central' noises the mean of the clipped updates, which {', '.join(averaging())} apply; "
            f"{name!r} aggregates otherwise (use mode 'local' or 'sample', or one of those)",
        )
    if privacy.mode == "central" and privacy.where == "client" and algorithm.sends:
        raise ScenarioError(
            "privacy.where",
            f"Flower's client-side clipping takes messages with the model alone; {name!r} also sends "
            f"{sorted(algorithm.sends)} (use where = 'server')",
        )


def averaging() -> list[str]:
    """The built-in strategies that central DP may wrap (they declare so)."""
    return [
        name
        for name in plugins.REGISTRY["strategy"]
        if (spec := declared(plugins.resolve(plugins.STRATEGY, name))) is not None and spec.central_dp
    ]


def make_strategy(
    scenario: Scenario, population: int, parameters: Sequence[str] = ()
) -> Strategy | AsyncStrategy:
    """The strategy ``strategy.name`` names, built with its params for ``population`` clients
    (``parameters``: the model's parameter names, for the algorithms whose arrays cover those)."""
    cfg = scenario.strategy
    target = plugins.resolve(plugins.STRATEGY, cfg.name, scenario.python_path)
    params = signatures.bind(plugins.STRATEGY, cfg.name, target, cfg.params)
    context = StrategyContext(scenario, population, tuple(parameters))
    given = signatures.given(target, {**TAKE_ALL, "context": context})
    strategy = plugins.call(plugins.STRATEGY, cfg.name, target, **params, **given)
    if isinstance(strategy, AsyncStrategy):
        return _checked(cfg.name, strategy)
    if not isinstance(strategy, Strategy):
        raise plugins.PluginError(
            plugins.STRATEGY.key,
            f"{cfg.name!r} gave {type(strategy).__name__}, expected {plugins.STRATEGY.returns} "
            "(e.g. a subclass of FedAvg), or a fedsim.AsyncStrategy",
        )
    privacy = scenario.privacy
    undeclared = declared(target) is None  # a declared one was checked by check_requirements
    if privacy is not None and privacy.mode == "central" and undeclared and not isinstance(strategy, FedAvg):
        raise plugins.PluginError(
            "privacy.mode",
            f"'central' noises the mean of the clipped updates: {cfg.name!r} must aggregate as "
            "FedAvg does (subclass it), or use mode 'local' or 'sample'",
        )
    return strategy


def _checked(name: str, strategy: AsyncStrategy) -> AsyncStrategy:
    try:
        strategy.check()
    except ValueError as error:
        raise plugins.PluginError("strategy.params", f"{name!r}: {error}") from None
    return strategy


def build_async(scenario: Scenario, population: int) -> AsyncStrategy:
    """The scenario's asynchronous strategy (``is_async``)."""
    strategy = make_strategy(scenario, population)
    assert isinstance(strategy, AsyncStrategy)
    return strategy


def async_batch(scenario: Scenario, population: int) -> int:
    """The most train messages an asynchronous step sends together (0 for a synchronous strategy):
    those training at once, and the buffer's that start as the slots free (strategies/async_schedule.py)."""
    if not is_async(scenario):
        return 0
    strategy = build_async(scenario, population)
    return strategy.max_concurrency + strategy.buffer_size


def build_strategy(
    scenario: Scenario, placement: Placement, parameters: Sequence[str] = ()
) -> SeededSampling:
    """The scenario's strategy over ``placement``'s partitions and nodes.

    With central differential privacy it sits behind the DP mechanism (strategies/privacy.py);
    with Poisson sampling each client trains with probability ``fraction_train``.
    """
    cfg = scenario.strategy
    population = placement.population
    strategy = make_strategy(scenario, population, parameters)
    if isinstance(strategy, AsyncStrategy):
        raise plugins.PluginError(
            plugins.STRATEGY.key, f"{cfg.name!r} gave an asynchronous strategy: declare it as a class"
        )
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
