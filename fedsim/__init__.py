"""fedsim: federated-learning simulation on Flower + Ray, from scenario files or from Python.

    import fedsim

    result = fedsim.run("scenarios/mnist_cnn_iid.toml", set=["rounds=5"])
    result.summary["final_accuracy"]

The names below load on first use (PEP 562), so ``import fedsim`` and the command line
stay quick: torch and Flower load only when a run needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the same names, for type checkers and editors
    from clients.training import add_terms as add_terms
    from clients.update import UpdateContext as UpdateContext
    from fedsim.api import Comparison as Comparison
    from fedsim.api import Interrupted as Interrupted
    from fedsim.api import RunFailed as RunFailed
    from fedsim.api import RunResult as RunResult
    from fedsim.api import compare as compare
    from fedsim.api import load_scenario as load_scenario
    from fedsim.api import run as run
    from fedsim.data.dataset import Dataset as Dataset
    from fedsim.data.federated import Split as Split
    from fedsim.scenario.sections import Scenario as Scenario
    from fedsim.scenario.sections import VariantConfig as VariantConfig
    from fedsim.scenario.tables import Bounds as Bounds
    from fedsim.scenario.tables import ScenarioError as ScenarioError
    from strategies.algorithm import Algorithm as Algorithm
    from strategies.algorithm import ArraysLike as ArraysLike
    from strategies.algorithm import ArraySpec as ArraySpec
    from strategies.algorithm import ClientStart as ClientStart
    from strategies.algorithm import Finished as Finished
    from strategies.algorithm import Local as Local
    from strategies.algorithm import Offset as Offset
    from strategies.algorithm import Proximal as Proximal
    from strategies.algorithm import Requires as Requires
    from strategies.algorithm import Term as Term
    from strategies.algorithm import algorithm as algorithm
    from strategies.asynchronous import AsyncStrategy as AsyncStrategy
    from strategies.asynchronous import staleness_weight as staleness_weight
    from strategies.context import StrategyContext as StrategyContext

_WHERE = {
    "run": "fedsim.api",
    "compare": "fedsim.api",
    "load_scenario": "fedsim.api",
    "RunResult": "fedsim.api",
    "Comparison": "fedsim.api",
    "RunFailed": "fedsim.api",
    "Interrupted": "fedsim.api",
    "Scenario": "fedsim.scenario.sections",
    "VariantConfig": "fedsim.scenario.sections",
    "ScenarioError": "fedsim.scenario.tables",
    "Bounds": "fedsim.scenario.tables",
    "Dataset": "fedsim.data.dataset",
    "Split": "fedsim.data.federated",
    "UpdateContext": "clients.update",
    "add_terms": "clients.training",
    "StrategyContext": "strategies.context",
    # An algorithm of your own (strategies/algorithm.py, docs/algorithms.md).
    **dict.fromkeys(
        (
            "algorithm",
            "Algorithm",
            "ArraysLike",
            "ArraySpec",
            "ClientStart",
            "Local",
            "Finished",
            "Requires",
            "Proximal",
            "Offset",
            "Term",
        ),
        "strategies.algorithm",
    ),
    # An asynchronous strategy of your own (strategies/asynchronous.py, docs/time.md).
    "AsyncStrategy": "strategies.asynchronous",
    "staleness_weight": "strategies.asynchronous",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'fedsim' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value  # once: later lookups find it directly
    return value
