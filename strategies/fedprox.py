"""FedProx: Li, Sahu, Zaheer, Sanjabi, Talwalkar and Smith 2020, "Federated Optimization in
Heterogeneous Networks" (MLSys).

Each client minimizes its loss plus the proximal term ``mu/2 * ||w - w_global||^2``, which keeps
its model near the global one however much local work it does (Section 3); the server averages
as FedAvg does.  Flower's FedProx is the server half: it sends ``mu`` in every train config.  The
client half adds the term's gradient ``mu * (w - w_global)`` to every local step (a
:class:`~strategies.algorithm.Proximal` term, applied by every trainer).  The term is optimized
but not in the reported ``train_loss``, so FedAvg's and FedProx's losses compare directly.
"""

from __future__ import annotations

from typing import Annotated, Any

from flwr.serverapp.strategy import FedProx, Strategy

from fedsim.scenario.tables import Bounds
from strategies.algorithm import ClientStart, Local, Proximal, algorithm

MU = "proximal-mu"  # where Flower's FedProx puts mu in the train config


def begin(start: ClientStart) -> Local:
    """The proximal term towards the model as received, if ``mu > 0``."""
    mu = float(start.server_config.get(MU, 0.0))
    if mu <= 0:
        return Local()
    anchor = start.tensors({name: start.global_weights[name] for name in start.parameters()})
    return Local(terms=(Proximal(mu, anchor),))


@algorithm(begin=begin, central_dp=True)
def fedprox(*, proximal_mu: Annotated[float, Bounds(ge=0)] = 0.0, **flower: Any) -> Strategy:
    """Li et al. 2020: clients add ``mu/2 * ||w - w_global||^2`` to their loss."""
    return FedProx(proximal_mu=proximal_mu, **flower)
