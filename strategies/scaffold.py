"""SCAFFOLD: Karimireddy et al. 2020, "SCAFFOLD: Stochastic Controlled Averaging for
Federated Learning" (ICML), Algorithm 1 with the control-variate update of option II.

The server keeps the global model ``x`` and control variate ``c``; client ``i`` keeps
its own ``c_i`` (in its ``Context.state``, see clients/app.py).  A round:

- the server sends ``x`` and ``c``;
- the client takes ``K`` steps ``y <- y - lr * (g(y) - c_i + c)`` from ``y = x``, then
  sets ``c_i+ = c_i - c + (x - y) / (K * lr)`` (option II), keeps ``c_i+`` and replies
  with ``y`` and ``dc_i = c_i+ - c_i``;
- the server forms ``dy_i = y_i - x`` and updates ``x <- x + eta_g * mean(dy_i)`` and
  ``c <- c + sum(dc_i) / N``, N being all clients, so that ``c`` stays the mean of
  every client's ``c_i`` (clients not sampled keep theirs).

The paper averages ``dy_i`` uniformly; here the mean is weighted by examples, as
FedAvg's is (the same for equal partitions), so that with ``eta_g = 1`` SCAFFOLD
differs from FedAvg by the correction alone.  Control variates exist for trainable
parameters only; the aggregation below is pure and checked by hand in the tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from fedsim import protocol as keys

Arrays = dict[str, np.ndarray]


def client_control_update(
    c_i: Mapping[str, np.ndarray],
    c: Mapping[str, np.ndarray],
    x: Mapping[str, np.ndarray],
    y: Mapping[str, np.ndarray],
    steps: int,
    lr: float,
) -> tuple[Arrays, Arrays]:
    """Option II: ``c_i+ = c_i - c + (x - y) / (steps * lr)``; returns ``(c_i+, c_i+ - c_i)``.

    Over the keys of ``c_i`` (the trainable parameters).
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


def to_numpy(record: ArrayRecord) -> Arrays:
    return {k: array.numpy() for k, array in record.items()}


def to_record(arrays: Mapping[str, np.ndarray]) -> ArrayRecord:
    return ArrayRecord({k: Array(np.ascontiguousarray(v)) for k, v in arrays.items()})


class Scaffold(FedAvg):
    """SCAFFOLD on Flower's FedAvg: its sampling, messages and metric averaging, our aggregation.

    ``num_clients`` is N of the paper, the whole population the control variate ``c``
    averages over; ``server_learning_rate`` is its ``eta_g``.
    """

    def __init__(self, num_clients: int, server_learning_rate: float = 1.0, **fedavg: Any) -> None:
        super().__init__(**fedavg)
        self.num_clients = num_clients
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
        self.x = to_numpy(arrays)
        if not self.c:  # c starts at zero, as every c_i does
            self.c = {k: np.zeros_like(v) for k, v in self.x.items()}
        messages = list(super().configure_train(server_round, arrays, config, grid))
        control = to_record(self.c)
        for message in messages:
            message.content[keys.CONTROL] = control
        return messages

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        # Flower's reply check expects one ArrayRecord; ours carry two (y_i and dc_i).
        valid, _ = self._check_and_log_replies(replies, is_train=True, validate=False)
        if not valid:
            return None, None
        contents = [m.content for m in valid]
        ys = [to_numpy(content.array_records[self.arrayrecord_key]) for content in contents]
        delta_cs = [to_numpy(content.array_records[keys.CONTROL_DELTA]) for content in contents]
        weights = [
            keys.number(content.metric_records[keys.METRICS], keys.NUM_EXAMPLES) for content in contents
        ]
        self.x, self.c = server_update(
            self.x, self.c, ys, weights, delta_cs, self.num_clients, self.server_learning_rate
        )
        return to_record(self.x), self.train_metrics_aggr_fn(contents, self.weighted_by_key)
