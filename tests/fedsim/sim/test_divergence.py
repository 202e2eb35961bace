"""A diverged global model stops the run at once, named with its round and strategy (sim/divergence.py)."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAdam

from fedsim import protocol as keys
from fedsim.scenario.files import parse_scenario
from fedsim.sim.divergence import Diverged, check_finite
from fedsim.sim.exchange import RunError
from fedsim.sim.rounds import in_dtypes_of

pytestmark = pytest.mark.usefixtures("task_identity")

FEDADAM = parse_scenario("[strategy]\nname = 'fedadam'\n[strategy.params]\neta = 1e300")


class _Grid:
    def get_node_ids(self) -> list[int]:
        return [1]


def fedadam_round(x: ArrayRecord, y: ArrayRecord, eta: float) -> ArrayRecord:
    """One FedAdam step from ``x`` towards the one reply ``y``, in ``x``'s dtypes (as rounds keep them)."""
    strategy = FedAdam(fraction_train=1.0, min_train_nodes=1, min_available_nodes=1, eta=eta)
    (sent,) = strategy.configure_train(1, x, ConfigRecord(), _Grid())  # type: ignore[arg-type]
    reply = Message(
        RecordDict({"arrays": y, "metrics": MetricRecord({keys.NUM_EXAMPLES: 1.0})}), reply_to=sent
    )
    new, _ = strategy.aggregate_train(1, [reply])
    assert new is not None
    return in_dtypes_of(x, new)


def test_a_huge_server_step_overflows_the_model_and_stops_the_run_naming_round_and_strategy() -> None:
    x = ArrayRecord({"w": Array(np.array([1.0, 2.0], np.float32)), "b": Array(np.zeros(3, np.float32))})
    y = ArrayRecord({"w": Array(np.array([0.5, 2.5], np.float32)), "b": Array(np.zeros(3, np.float32))})
    new = fedadam_round(x, y, eta=1e300)  # float64 holds the step; float32 cannot
    with pytest.raises(Diverged) as caught:
        check_finite(4, new, FEDADAM)
    assert isinstance(caught.value, RunError)  # a failed run: exit 1, the rounds before it kept
    assert str(caught.value) == (
        "round 4: the global model diverged: after strategy 'fedadam' aggregated, 2 of 5 values are NaN "
        "or infinite (2 in 'w'); it was neither checkpointed nor saved as model.pt; "
        "try a smaller strategy.params.eta (now 1e+300) or client.lr (0.1)"
    )


def test_a_model_with_finite_values_passes_and_every_broken_layer_is_counted() -> None:
    good = fedadam_round(
        ArrayRecord({"w": Array(np.ones(2, np.float32))}),
        ArrayRecord({"w": Array(np.zeros(2, np.float32))}),
        0.1,
    )
    check_finite(1, good, FEDADAM)
    broken = ArrayRecord(
        {
            "a": Array(np.array([np.nan, 1.0])),
            "steps": Array(np.array([3], np.int64)),
            "b": Array(np.array([-np.inf], np.float32)),
        }
    )
    with pytest.raises(Diverged, match=r"2 of 4 values are NaN or infinite \(1 in 'a' and 1 more layers\)"):
        check_finite(2, broken, parse_scenario("[strategy]\nname = 'fedavg'"))
    with pytest.raises(
        Diverged, match=r"try a smaller client\.lr \(now 0\.1\)$"
    ):  # FedAvg has no server step
        check_finite(2, broken, parse_scenario("[strategy]\nname = 'fedavg'"))
