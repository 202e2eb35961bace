"""Ditto: Li, Hu, Beirami and Smith 2021, "Ditto: Fair and Robust Federated Learning Through
Personalization" (ICML), Algorithm 1.

The global model ``w`` is FedAvg's.  Each client also keeps a personal model ``v_k`` (its state,
first the global model as it first receives it), and when sampled, after its global update,
takes as many local epochs on

    F_k(v_k) + lam / 2 * ||v_k - w^t||^2

from its kept ``v_k``, ``w^t`` being the global model it received (a
:class:`~strategies.algorithm.Proximal` term).  ``v_k`` never leaves the client.  Per-client
evaluation (``[evaluation] clients``) evaluates ``v_k`` on the client's test data beside the
global model (``personal_acc_*``); a client never sampled has ``v_k = w``.  ``lam = 0`` is
local training alone; a large ``lam`` pulls ``v_k`` to the global model.
"""

from __future__ import annotations

from typing import Annotated, Any

from flwr.serverapp.strategy import FedAvg, Strategy

from fedsim.scenario.tables import Bounds
from strategies.algorithm import (
    Arrays,
    ArraysLike,
    ClientStart,
    Finished,
    Local,
    Proximal,
    Requires,
    algorithm,
)

PERSONAL, LAM = "personal", "lam"


def finish(start: ClientStart, y: Arrays, steps: int) -> Finished:
    """The personal model's epochs, pulled towards the global model the round began with."""
    lam = float(start.strategy.get(LAM, 0.1))
    anchor = start.tensors({name: start.global_weights[name] for name in start.parameters()})
    local = Local(terms=(Proximal(lam, anchor),)) if lam > 0 else Local()
    personal = start.train(start.state[PERSONAL], local, start.config.local_epochs)
    return Finished(state={PERSONAL: personal})


def personalize(start: ClientStart) -> Arrays:
    return start.state[PERSONAL]


@algorithm(
    finish=finish,
    personalize=personalize,
    state={PERSONAL: ArraysLike("model", init="global")},
    # The personal steps are the client's own, after its update: not stacked by the cohort engine.
    requires=Requires(per_client=True),
)
def ditto(*, lam: Annotated[float, Bounds(ge=0)] = 0.1, **flower: Any) -> Strategy:
    """Li et al. 2021: FedAvg, and each client's personal model kept near it by ``lam``."""
    return FedAvg(**flower)
