"""FedAvg: McMahan, Moore, Ramage, Hampson and Agüera y Arcas 2017, "Communication-Efficient
Learning of Deep Networks from Decentralized Data" (AISTATS).

Each sampled client starts from the global model and takes ``client.local_epochs`` of
minibatch SGD on its data; the server replaces the model by the clients' models averaged,
weighted by their examples.  Flower's FedAvg is the server half and the built-in local update
the client half, so the algorithm adds nothing to either; it declares that central DP may wrap
it: its aggregate is the mean that DP-FedAvg clips and noises (strategies/privacy.py).
"""

from __future__ import annotations

from typing import Any

from flwr.serverapp.strategy import FedAvg, Strategy

from strategies.algorithm import algorithm


@algorithm(central_dp=True)
def fedavg(**flower: Any) -> Strategy:
    """McMahan et al. 2017; ``**flower``: Flower's sampling settings (fedsim samples)."""
    return FedAvg(**flower)
