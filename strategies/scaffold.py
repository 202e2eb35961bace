"""SCAFFOLD: Karimireddy, Kale, Mohri, Reddi, Stich and Suresh 2020, "SCAFFOLD: Stochastic
Controlled Averaging for Federated Learning" (ICML), Algorithm 1 with the control-variate
update of option II.

The server keeps the global model ``x`` and control variate ``c``; client ``i`` keeps its own
``c_i`` (its state, zero at first).  A round:

- the server sends ``x`` and ``c``;
- the client takes ``K`` steps ``y <- y - lr * (g(y) - c_i + c)`` from ``y = x`` (the term
  ``c - c_i`` is an :class:`~strategies.algorithm.Offset`), then sets
  ``c_i+ = c_i - c + (x - y) / (K * lr)`` (option II), keeps it and replies with ``y`` and
  ``dc_i = c_i+ - c_i``;
- the server forms ``dy_i = y_i - x`` and updates ``x <- x + eta_g * mean(dy_i)`` and
  ``c <- c + sum(dc_i) / N``, N being all clients, so that ``c`` stays the mean of every
  client's ``c_i`` (clients not sampled keep theirs).

The paper averages ``dy_i`` uniformly; here the mean is weighted by examples, as FedAvg's is
(the same for equal partitions), so that with ``eta_g = 1`` SCAFFOLD differs from FedAvg by
the correction alone.  Control variates exist for the model's parameters only.  Option II
assumes the ``K`` steps were plain SGD with the correction: the built-in update, no momentum.
The math is in pure functions, checked by hand in tests/strategies/test_scaffold.py.
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
    Requires,
    algorithm,
)
from strategies.context import StrategyContext

C, DELTA_C, C_I = "c", "delta_c", "c_i"  # the server's c, a reply's dc_i, a client's kept c_i


def client_control_update(
    c_i: Mapping[str, np.ndarray],
    c: Mapping[str, np.ndarray],
    x: Mapping[str, np.ndarray],
    y: Mapping[str, np.ndarray],
    steps: int,
    lr: float,
) -> tuple[Arrays, Arrays]:
    """Option II: ``c_i+ = c_i - c + (x - y) / (steps * lr)``; returns ``(c_i+, c_i+ - c_i)``.

    Over the keys of ``c_i`` (the parameters).
    """
    new = {k: (c_i[k] - c[k] + (x[k] - y[k]) / (steps * lr)).astype(c_i[k].dtype) for k in c_i}
    return new, {k: new[k] - c_i[k] for k in c_i}


def server_update(
    x: Mapping[str, np.ndarray],
    c: Mapping[str, np.ndarray],
    ys: Sequence[Mapping[str, np.ndarray]],
    weights: Sequence[float],
    delta_cs: Sequence[Mapping[str, np.ndarray]],
    num_clients: int,
    server_lr: float,
) -> tuple[Arrays, Arrays]:
    """``x + eta_g * weighted mean(y_i - x)`` and ``c + sum(dc_i) / num_clients``."""
    total = float(sum(weights))
    new_x = {
        k: (
            x[k] + server_lr * sum(w * (y[k] - x[k]) for y, w in zip(ys, weights, strict=True)) / total
        ).astype(x[k].dtype)
        for k in x
    }
    new_c = {k: (c[k] + sum(d[k] for d in delta_cs if k in d) / num_clients).astype(c[k].dtype) for k in c}
    return new_x, new_c


# --- The client half --------------------------------------------------------------------------


def begin(start: ClientStart) -> Local:
    """Every step's gradient gains ``c - c_i``."""
    c, c_i = start.received[C], start.state[C_I]
    return Local(terms=(Offset(start.tensors({k: c[k] - c_i[k] for k in c_i})),))


def finish(start: ClientStart, y: Arrays, steps: int) -> Finished:
    """Keep ``c_i + dc_i`` and reply with ``dc_i``.

    The kept value is ``c_i`` plus the very change the server adds to ``c``, not option II's
    ``c_i+`` itself (the two differ in the last bits): so ``c`` stays the mean of the ``c_i``.
    """
    c, c_i = start.received[C], start.state[C_I]
    _, delta = client_control_update(c_i, c, start.global_weights, y, steps, start.config.lr)
    return Finished(replies={DELTA_C: delta}, state={C_I: {k: c_i[k] + delta[k] for k in c_i}})


# --- The server half --------------------------------------------------------------------------


@algorithm(
    begin=begin,
    finish=finish,
    state={C_I: ArraysLike("parameters")},
    sends={C: ArraysLike("parameters")},
    replies={DELTA_C: ArraysLike("parameters")},
    requires=Requires(plain_sgd=True, builtin_update=True),
)
class Scaffold(FedAvg):
    """SCAFFOLD on Flower's FedAvg: its sampling, messages and metric averaging, our aggregation.

    ``server_learning_rate`` is the paper's ``eta_g``; ``c`` averages over the whole population
    (``context.num_clients``, the paper's N).
    """

    def __init__(
        self,
        *,
        server_learning_rate: Annotated[float, Bounds(gt=0)] = 1.0,
        context: StrategyContext,
        **fedavg: Any,
    ) -> None:
        super().__init__(**fedavg)
        self.num_clients = context.num_clients
        self.parameters = context.parameters
        self.server_learning_rate = server_learning_rate
        self.x: Arrays = {}
        self.c: Arrays = {}

    # Stateful (fedsim/sim/checkpoint.py): ``c`` outlives the round; ``x`` is set again by
    # every configure_train but kept too, so a restored strategy is the saved one.
    def state(self) -> dict[str, Any]:
        return {"x": dict(self.x), "c": dict(self.c)}

    def restore(self, state: dict[str, Any]) -> None:
        self.x = {k: np.array(v) for k, v in state["x"].items()}
        self.c = {k: np.array(v) for k, v in state["c"].items()}

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self.x = keys.to_numpy(arrays)
        if not self.c:  # c starts at zero, as every c_i does
            names = self.parameters or list(self.x)
            self.c = {k: np.zeros_like(self.x[k]) for k in names}
        messages = list(super().configure_train(server_round, arrays, config, grid))
        control = keys.to_record(self.c)
        for message in messages:
            message.content[C] = control
        return messages

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        # Flower's reply check expects one ArrayRecord; ours carry two (y_i and dc_i).
        valid, _ = self._check_and_log_replies(replies, is_train=True, validate=False)
        if not valid:
            return None, None
        contents = [m.content for m in valid]
        ys = [keys.to_numpy(content.array_records[self.arrayrecord_key]) for content in contents]
        delta_cs = [keys.to_numpy(content.array_records[DELTA_C]) for content in contents]
        weights = [
            keys.number(content.metric_records[keys.METRICS], keys.NUM_EXAMPLES) for content in contents
        ]
        self.x, self.c = server_update(
            self.x, self.c, ys, weights, delta_cs, self.num_clients, self.server_learning_rate
        )
        return keys.to_record(self.x), self.train_metrics_aggr_fn(contents, self.weighted_by_key)
