"""FedNova: Wang, Liu, Liang, Joshi and Poor 2020, "Tackling the Objective Inconsistency
Problem in Heterogeneous Federated Optimization" (NeurIPS).

When clients do different amounts of local work in a round (more data at the same epochs,
stragglers that stop early), FedAvg's average of their models leans towards the clients
that took more steps, and it converges to the optimum of a different objective than the
one it set out to minimize, weighted by ``p_i * tau_i`` instead of ``p_i``.  FedNova
(Section 4) normalizes each client's change by its amount of work before averaging:

- client ``i`` starts from the global model ``x``, takes ``tau_i`` local steps to ``y_i``
  and reports ``||a_i||_1``: ``tau_i`` for plain SGD, more with momentum (its steps'
  weights, :func:`momentum_norm`);
- the server forms the normalized updates ``d_i = (x - y_i) / ||a_i||_1``, the effective
  number of steps ``tau_eff = sum_i p_i ||a_i||_1`` (``p_i = n_i / n`` over the round's
  clients, the paper's choice of ``tau_eff``) and moves
  ``x <- x - eta_g * tau_eff * sum_i p_i d_i``.

With equal ``||a_i||_1`` this is FedAvg (``eta_g = 1``).  The client half reports ``tau`` and
``a_norm`` with its metrics, from the steps it took; the strategy returns ``tau_eff`` with its
own, so every row of metrics.jsonl has it.  The pure functions are checked by hand in
tests/strategies/test_fednova.py.
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
from strategies.algorithm import Arrays, ClientStart, Finished, algorithm

TAU = "tau"  # the local steps a client took, tau_i
A_NORM = "a_norm"  # ||a_i||_1: tau_i for plain SGD
TAU_EFF = "tau_eff"  # the strategy's own metric: sum_i p_i ||a_i||_1


def momentum_norm(steps: int, momentum: float) -> float:
    """``||a_i||_1`` of ``steps`` SGD steps with heavy-ball momentum ``rho`` (Appendix of the paper).

    Gradient ``j`` (of ``0 .. steps - 1``) reaches the model through every later step's
    momentum buffer, with weight ``(1 - rho^(steps - j)) / (1 - rho)``; summed:
    ``(steps - rho (1 - rho^steps) / (1 - rho)) / (1 - rho)``, which is ``steps`` at ``rho = 0``.
    """
    if momentum == 0.0:
        return float(steps)
    rho = momentum
    return (steps - rho * (1 - rho**steps) / (1 - rho)) / (1 - rho)


def fednova_aggregate(
    x: Mapping[str, np.ndarray],
    ys: Sequence[Mapping[str, np.ndarray]],
    num_examples: Sequence[float],
    a_norms: Sequence[float],
    server_lr: float = 1.0,
) -> tuple[Arrays, float]:
    """FedNova's server step: ``x - server_lr * tau_eff * sum_i p_i (x - y_i) / a_i`` and ``tau_eff``.

    ``p_i = n_i / sum_j n_j`` from ``num_examples``; ``tau_eff = sum_i p_i a_i``.  Each array
    keeps its dtype (computed in float64).
    """
    if not ys or len(ys) != len(num_examples) or len(ys) != len(a_norms):
        raise ValueError(
            f"expected one n_i and a_i per client, got {len(ys)}, {len(num_examples)}, {len(a_norms)}"
        )
    if min(a_norms) <= 0 or min(num_examples) < 0 or sum(num_examples) <= 0:
        raise ValueError(f"expected a_i > 0 and n_i >= 0 with some n_i > 0, got {a_norms}, {num_examples}")
    total = float(sum(num_examples))
    p = [n / total for n in num_examples]
    tau_eff = sum(p_i * a_i for p_i, a_i in zip(p, a_norms, strict=True))
    new = {}
    for key, start in x.items():
        base = start.astype(np.float64)
        direction = sum(
            p_i * (base - y[key].astype(np.float64)) / a_i for p_i, y, a_i in zip(p, ys, a_norms, strict=True)
        )
        new[key] = (base - server_lr * tau_eff * direction).astype(start.dtype)
    return new, tau_eff


# --- The client half --------------------------------------------------------------------------


def finish(start: ClientStart, y: Arrays, steps: int) -> Finished:
    """Report the work done: ``tau_i`` (this client's steps: a straggler's are fewer) and ``||a_i||_1``."""
    return Finished(metrics={TAU: float(steps), A_NORM: momentum_norm(steps, start.config.momentum)})


# --- The server half --------------------------------------------------------------------------


@algorithm(finish=finish, metrics=(TAU, A_NORM))
class FedNova(FedAvg):
    """FedNova on Flower's FedAvg: its sampling, messages and metric averaging, FedNova's
    aggregation; ``server_learning_rate`` is the paper's ``eta_g`` (1: no step size of its own)."""

    def __init__(self, *, server_learning_rate: Annotated[float, Bounds(gt=0)] = 1.0, **fedavg: Any) -> None:
        super().__init__(**fedavg)
        self.server_learning_rate = server_learning_rate
        self.current: Arrays = {}  # x: the global model this round's clients start from

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self.current = keys.to_numpy(arrays)
        return super().configure_train(server_round, arrays, config, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        averaged, metrics = super().aggregate_train(server_round, replies)  # checks them; averages metrics
        valid = [m.content for m in replies if not m.has_error()]
        if averaged is None or not valid:
            return averaged, metrics
        ys = [keys.to_numpy(c.array_records[self.arrayrecord_key]) for c in valid]
        numbers = [c.metric_records[keys.METRICS] for c in valid]
        weights = [keys.number(m, self.weighted_by_key) for m in numbers]
        a_norms = [keys.number(m, A_NORM) for m in numbers]
        new, tau_eff = fednova_aggregate(self.current, ys, weights, a_norms, self.server_learning_rate)
        metrics = MetricRecord() if metrics is None else metrics
        metrics[TAU_EFF] = tau_eff
        return keys.to_record(new), metrics
