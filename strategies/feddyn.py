"""FedDyn: Acar, Zhao, Navarro, Mattina, Whatmough and Saligrama 2021, "Federated Learning Based
on Dynamic Regularization" (ICLR), Algorithm 1.

Each client ``k`` keeps the gradient of its loss at its last local model, ``g_k = grad L_k(theta_k)``
(zero before its first round), and minimizes a dynamically regularized objective,

    L_k(theta) - <g_k, theta> + alpha/2 * ||theta - theta_server||^2,

whose stationary points agree with the global objective's once the clients' models agree.  Its
local steps add the gradient of the two extra terms, ``-g_k + alpha (theta - theta_server)`` (an
:class:`~strategies.algorithm.Offset` and a :class:`~strategies.algorithm.Proximal` term); after
them the first-order condition of the local problem gives the new gradient,
``g_k <- g_k - alpha (theta_k - theta_server)``, which the client keeps.  The server keeps ``h``,
the running mean of the clients' corrections, over all ``m`` clients (those not sampled count zero):

    h <- h - alpha/m * sum_k (theta_k - theta_server),
    theta_server <- mean_k theta_k - h / alpha.

As in the paper the mean is uniform over the round's clients.  ``h`` and ``g_k`` exist for the
model's parameters; its other entries (buffers) are averaged.  The math is in pure functions,
checked by hand in tests/strategies/test_feddyn.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from fedsim import protocol as keys
from fedsim.scenario.tables import Bounds
from strategies.algorithm import (
    Arrays,
    ArraysLike,
    ClientStart,
    Finished,
    Local,
    Offset,
    Proximal,
    algorithm,
)
from strategies.context import StrategyContext

GRAD = "grad"  # a client's kept g_k
ALPHA = "feddyn-alpha"  # the strategy's alpha, in every train config


def client_gradient_update(
    g: Mapping[str, np.ndarray],
    theta: Mapping[str, np.ndarray],
    server: Mapping[str, np.ndarray],
    alpha: float,
) -> Arrays:
    """``g_k - alpha (theta_k - theta_server)``, over the keys of ``g`` (the parameters)."""
    return {k: (g[k] - alpha * (theta[k] - server[k])).astype(g[k].dtype) for k in g}


def server_update(
    server: Mapping[str, np.ndarray],
    h: Mapping[str, np.ndarray],
    thetas: Sequence[Mapping[str, np.ndarray]],
    alpha: float,
    num_clients: int,
) -> tuple[Arrays, Arrays]:
    """``h - alpha/m * sum_k (theta_k - theta_server)`` over ``h``'s keys, and the new model: the
    clients' uniform mean, less ``h / alpha`` where ``h`` has the key."""
    new_h = {
        k: (h[k] - alpha / num_clients * sum(t[k] - server[k] for t in thetas)).astype(h[k].dtype) for k in h
    }
    new = {}
    for k, start in server.items():
        mean = np.mean([t[k] for t in thetas], axis=0)
        new[k] = (mean - new_h[k] / alpha if k in new_h else mean).astype(start.dtype)
    return new, new_h


# --- The client half --------------------------------------------------------------------------


def begin(start: ClientStart) -> Local:
    """Every step's gradient gains ``-g_k + alpha (theta - theta_server)``."""
    alpha = float(start.server_config[ALPHA])
    g = start.state[GRAD]
    server = start.tensors({k: start.global_weights[k] for k in g})
    return Local(terms=(Offset(start.tensors({k: -v for k, v in g.items()})), Proximal(alpha, server)))


def finish(start: ClientStart, theta: Arrays, steps: int) -> Finished:
    """Keep the new ``g_k``."""
    alpha = float(start.server_config[ALPHA])
    g = client_gradient_update(start.state[GRAD], theta, start.global_weights, alpha)
    return Finished(state={GRAD: g})


# --- The server half --------------------------------------------------------------------------


@algorithm(begin=begin, finish=finish, state={GRAD: ArraysLike("parameters")})
class FedDyn(FedAvg):
    """FedDyn on Flower's FedAvg: its sampling, messages and metric averaging, FedDyn's model.

    ``alpha`` is the paper's regularization weight (it tried 0.1, 0.01 and 0.001); ``h``
    averages over the whole population (``context.num_clients``, the paper's m).
    """

    def __init__(
        self, *, alpha: Annotated[float, Bounds(gt=0)] = 0.01, context: StrategyContext, **fedavg: Any
    ) -> None:
        super().__init__(**fedavg)
        self.alpha = alpha
        self.num_clients = context.num_clients
        self.parameters = context.parameters
        self.server: Arrays = {}
        self.h: Arrays = {}

    # Stateful (fedsim/sim/checkpoint.py): h outlives the round.
    def state(self) -> dict[str, Any]:
        return {"server": dict(self.server), "h": dict(self.h)}

    def restore(self, state: dict[str, Any]) -> None:
        self.server = {k: np.array(v) for k, v in state["server"].items()}
        self.h = {k: np.array(v) for k, v in state["h"].items()}

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self.server = keys.to_numpy(arrays)
        if not self.h:  # h starts at zero, as every g_k does
            self.h = {k: np.zeros_like(self.server[k]) for k in self.parameters or self.server}
        config[ALPHA] = self.alpha
        return super().configure_train(server_round, arrays, config, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        averaged, metrics = super().aggregate_train(server_round, replies)  # checks them; averages metrics
        valid = [m.content for m in replies if not m.has_error()]
        if averaged is None or not valid:
            return averaged, metrics
        thetas = [keys.to_numpy(c.array_records[self.arrayrecord_key]) for c in valid]
        new, self.h = server_update(self.server, self.h, thetas, self.alpha, self.num_clients)
        return keys.to_record(new), metrics
