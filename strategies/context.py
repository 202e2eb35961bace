"""What a strategy plug-in may ask for besides its params: the run it serves.

Free of Flower, so ``fedsim`` can export it without loading Flower.
"""

from __future__ import annotations

from dataclasses import dataclass

from fedsim.scenario.sections import Scenario


@dataclass(frozen=True)
class StrategyContext:
    """Given to a strategy factory or class that takes a ``context`` keyword."""

    scenario: Scenario  # the resolved scenario (its client.lr, attack, ...)
    num_clients: int  # the population the strategy samples from
    # The model's parameter names (state-dict names of its named_parameters, in order): the
    # arrays of an algorithm's ArraysLike("parameters"); () where the model is not known.
    parameters: tuple[str, ...] = ()
