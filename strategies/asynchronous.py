"""Asynchronous aggregation: what an asynchronous strategy is, and how stale updates are weighted.

An asynchronous server does not wait for a round.  Up to ``max_concurrency`` clients train at
once, each on the model version it was sent; a client's update is applied at its arrival on the
virtual clock, and the server makes a new model version every ``buffer_size`` arrivals
(strategies/async_schedule.py decides who trains when; fedsim/sim/async_rounds.py runs it through
the Flower grid).  "round" in metrics.jsonl is one new model version.

A strategy is asynchronous when it is an :class:`AsyncStrategy`: a plug-in through the same door
as every strategy (``strategy.name``, its keyword arguments in ``[strategy.params]``), built-ins
(strategies/fedbuff.py, strategies/fedasync.py) and users' alike.  It writes one method,
:meth:`AsyncStrategy.aggregate`; the client half is the built-in local update, as FedAvg's.

Staleness ``tau`` of an update: how many model versions were made between the one it trained
from and the one it is applied to (0: none).  The weights of Xie et al. 2019 ("Asynchronous
Federated Optimization"), Section 5.2, as pure functions of ``tau``: ``constant`` (1),
``polynomial`` ``(tau + 1) ** -a``, ``hinge`` 1 while ``tau <= b``, then ``1 / (a (tau - b) + 1)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from strategies.state import attributes_restore, attributes_state

Arrays = dict[str, np.ndarray]
StalenessName = Literal["constant", "polynomial", "hinge"]


def staleness_weight(kind: StalenessName, tau: int, a: float = 0.5, b: float = 4.0) -> float:
    """The weight of an update ``tau`` versions stale (Xie et al. 2019, Section 5.2)."""
    if tau < 0:
        raise ValueError(f"staleness is at least 0, got {tau}")
    if kind == "constant":
        return 1.0
    if kind == "polynomial":
        return float((tau + 1) ** -a)
    return 1.0 if tau <= b else 1.0 / (a * (tau - b) + 1.0)


@dataclass(frozen=True)
class Update:
    """One client's update, as the server applies it."""

    model: Arrays  # the client's trained model
    base: Arrays  # the model version it trained from
    staleness: int  # versions made between ``base`` and the model it is applied to
    num_examples: int
    partition: int

    def delta(self) -> Arrays:
        """Trained minus received, per array (what FedBuff buffers)."""
        return {k: self.model[k] - self.base[k] for k in self.model}


class AsyncStrategy:
    """Subclass it and write :meth:`aggregate`; set ``buffer_size`` (updates per new model
    version) and ``max_concurrency`` (clients training at once) in ``__init__``.

    Its instance attributes that a checkpoint can hold (numbers, strings, arrays, lists and
    dicts of those) are saved with every version, so ``--resume`` restores them.
    """

    buffer_size: int = 1
    max_concurrency: int = 1

    def aggregate(self, model: Arrays, updates: Sequence[Update]) -> Arrays:
        """The next model version from the current one and ``buffer_size`` updates, in their
        arrival order (fewer where some client failed; none leaves the model as it is)."""
        raise NotImplementedError

    def check(self) -> None:
        """Refuse impossible settings (ValueError naming the parameter); called once built."""
        if self.buffer_size < 1 or self.max_concurrency < 1:
            raise ValueError("buffer_size and max_concurrency are at least 1")
        if self.buffer_size > self.max_concurrency:
            raise ValueError(
                f"buffer_size {self.buffer_size} needs at least as many clients training at once "
                f"(max_concurrency {self.max_concurrency})"
            )

    def state(self) -> dict[str, Any]:
        return attributes_state(self)

    def restore(self, state: dict[str, Any]) -> None:
        attributes_restore(self, state)


def weighted_mean(updates: Sequence[Update], weights: Sequence[float]) -> Arrays:
    """``sum_i w_i * delta_i / len(updates)``: FedBuff's buffered step (before the server rate)."""
    first = updates[0].model
    total = {k: np.zeros_like(first[k], dtype=np.float64) for k in first}
    for update, weight in zip(updates, weights, strict=True):
        for k, d in update.delta().items():
            total[k] += weight * d
    return {k: (v / len(updates)).astype(first[k].dtype) for k, v in total.items()}
