"""Fine-tuning: FedAvg's global model, then evaluated after ``epochs`` of each client's own local
SGD from it, on the client's own test data (per-client evaluation, ``[evaluation] clients``).

A cheap and strong personalization baseline: Yu, Bagdasaryan and Shmatikov 2020, "Salvaging
Federated Learning by Local Adaptation", and Wang et al. 2019, "Federated Evaluation of
On-device Personalization".  Training is FedAvg's, untouched: fine-tuning happens at evaluation
only, on a copy the client keeps for nothing (``personal_acc_*`` beside ``client_acc_*``).
"""

from __future__ import annotations

from typing import Annotated, Any

from flwr.serverapp.strategy import FedAvg, Strategy

from fedsim.scenario.tables import Bounds
from strategies.algorithm import Arrays, ClientStart, algorithm

EPOCHS = "epochs"


def personalize(start: ClientStart) -> Arrays:
    """The global model after ``epochs`` of the client's local SGD on its training data."""
    return start.train(start.global_weights, epochs=int(start.strategy.get(EPOCHS, 1)))


@algorithm(personalize=personalize, central_dp=True)
def fine_tune(*, epochs: Annotated[int, Bounds(ge=1)] = 1, **flower: Any) -> Strategy:
    """FedAvg, evaluated per client after ``epochs`` of local fine-tuning (``epochs`` is read by
    the clients, from the scenario)."""
    return FedAvg(**flower)
