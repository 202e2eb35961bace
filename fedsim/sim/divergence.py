"""A diverged global model stops the run at the round it diverged in.

A server step too large for the problem (FedAdam with a huge ``eta``) can overflow the
aggregate to inf or NaN.  Sent on, it would make every client's reply non-finite, so
the run would fail a round later blaming the clients ("6 rejected"), with the broken
model already checkpointed: a resume would start from it and fail again.  Checked right
after aggregation, the model never reaches a client, a checkpoint or ``model.pt``.
"""

from __future__ import annotations

import numpy as np
from flwr.app import ArrayRecord

from fedsim.scenario.sections import Scenario
from fedsim.sim.exchange import RunError

STEP_KEYS = ("eta", "server_learning_rate")  # a strategy's server step, where it has one


class Diverged(RunError):
    """The aggregated global model holds NaN or inf; the run stops without saving it."""


def check_finite(server_round: int, arrays: ArrayRecord, scenario: Scenario) -> None:
    """Raise :class:`Diverged` naming the round, the strategy and the first broken layer."""
    broken = {name: _non_finite(array.numpy()) for name, array in arrays.items()}
    broken = {name: count for name, count in broken.items() if count}
    if not broken:
        return
    layer, count = next(iter(broken.items()))
    values = sum(array.numpy().size for array in arrays.values())
    name = scenario.strategy.name
    raise Diverged(
        f"round {server_round}: the global model diverged: after strategy {name!r} aggregated, "
        f"{sum(broken.values())} of {values} values are NaN or infinite ({count} in {layer!r}"
        f"{f' and {len(broken) - 1} more layers' if len(broken) > 1 else ''}); it was neither "
        f"checkpointed nor saved as model.pt; {_advice(scenario)}"
    )


def _non_finite(values: np.ndarray) -> int:
    if not np.issubdtype(values.dtype, np.inexact):  # integer buffers cannot overflow to inf
        return 0
    return int(values.size - np.count_nonzero(np.isfinite(values)))


def _advice(scenario: Scenario) -> str:
    """What to lower: the strategy's server step if it has one, else the clients' learning rate."""
    for key in STEP_KEYS:
        step = scenario.strategy.params.get(key)
        if isinstance(step, int | float):
            return f"try a smaller strategy.params.{key} (now {step:g}) or client.lr ({scenario.client.lr:g})"
    return f"try a smaller client.lr (now {scenario.client.lr:g})"
