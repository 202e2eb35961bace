"""A small algorithm that declares every part an algorithm may (strategies/algorithm.py), for the
tests of the machinery around it: state kept and carried, arrays sent and replied, a gradient
term, a metric of its own.  Not a method of the literature: ``strategy.name =
"tests.stateful:Tally"``.

Each client keeps ``tally``, the sum of its past model changes; its steps add ``0.01 * tally``
to the gradient, its reply carries this round's change ``moved`` and ``rounds``, how many rounds
it has trained; the server sends ``scale`` (ones) and averages the models as FedAvg does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from fedsim import protocol as keys
from strategies.algorithm import Arrays, ArraysLike, ClientStart, Finished, Local, Offset, Requires, algorithm
from strategies.context import StrategyContext

SCALE, MOVED, TALLY, ROUNDS = "scale", "moved", "tally", "rounds"


def begin(start: ClientStart) -> Local:
    scale, tally = start.received[SCALE], start.state[TALLY]
    return Local(terms=(Offset(start.tensors({k: 0.01 * scale[k] * tally[k] for k in tally})),))


def finish(start: ClientStart, y: Arrays, steps: int) -> Finished:
    tally = start.state[TALLY]
    moved = {k: y[k] - start.global_weights[k] for k in tally}
    rounds = float(start.state[ROUNDS]["n"][0]) + 1
    return Finished(
        replies={MOVED: moved},
        state={TALLY: {k: tally[k] + moved[k] for k in tally}, ROUNDS: {"n": np.array([rounds], np.float32)}},
        metrics={ROUNDS: rounds},
    )


class Count:
    """One number, zero at first: shaped like no model array (an ArraySpec of its own)."""

    def first(self, model: Mapping[str, np.ndarray], parameters: Sequence[str]) -> Arrays:
        return {"n": np.zeros(1, np.float32)}


@algorithm(
    begin=begin,
    finish=finish,
    state={TALLY: ArraysLike("parameters"), ROUNDS: Count()},
    sends={SCALE: ArraysLike("parameters")},
    replies={MOVED: ArraysLike("parameters")},
    metrics=(ROUNDS,),
)
class Tally(FedAvg):
    def __init__(self, *, context: StrategyContext, **fedavg: Any) -> None:
        super().__init__(**fedavg)
        self.context = context

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        messages = list(super().configure_train(server_round, arrays, config, grid))
        ones = keys.to_record(
            {k: np.ones_like(a.numpy()) for k, a in arrays.items() if "weight" in k or "bias" in k}
        )
        for message in messages:
            message.content[SCALE] = ones
        return messages

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        plain = [m if m.has_error() else _without(m, MOVED) for m in replies]  # FedAvg takes one ArrayRecord
        return super().aggregate_train(server_round, plain)


def _without(reply: Message, name: str) -> Message:
    reply.content = RecordDict({k: v for k, v in reply.content.items() if k != name})
    return reply


@algorithm(requires=Requires(per_client=True))
class Alone(FedAvg):
    """An algorithm whose local step is each client's own (as one with a loss of its own is)."""
