"""FedBuff: Nguyen, Malik, Zhan, Yousefpour, Rabbat, Malek and Huba 2022, "Federated Learning
with Buffered Asynchronous Aggregation" (AISTATS).

Up to ``max_concurrency`` clients train at once, each from the model version it was sent; the
server buffers their updates (trained minus received), each weighted by its staleness, and
after ``buffer_size`` of them takes a step: ``w <- w + server_lr * sum_i s(tau_i) delta_i / K``.
The paper's staleness weight is ``1 / sqrt(1 + tau)``: ``staleness = "polynomial"``, ``a = 0.5``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fedsim.scenario.tables import Bounds
from strategies.asynchronous import (
    Arrays,
    AsyncStrategy,
    StalenessName,
    Update,
    staleness_weight,
    weighted_mean,
)


class FedBuff(AsyncStrategy):
    def __init__(
        self,
        buffer_size: Annotated[int, Bounds(ge=1)] = 10,
        max_concurrency: Annotated[int, Bounds(ge=1)] = 20,
        server_lr: Annotated[float, Bounds(gt=0)] = 1.0,
        staleness: StalenessName = "polynomial",
        a: Annotated[float, Bounds(gt=0)] = 0.5,
        b: Annotated[float, Bounds(ge=0)] = 4.0,
    ) -> None:
        self.buffer_size, self.max_concurrency = buffer_size, max_concurrency
        self.server_lr, self.staleness, self.a, self.b = server_lr, staleness, a, b

    def aggregate(self, model: Arrays, updates: Sequence[Update]) -> Arrays:
        if not updates:
            return model
        weights = [staleness_weight(self.staleness, u.staleness, self.a, self.b) for u in updates]
        step = weighted_mean(updates, weights)
        return {k: (model[k] + self.server_lr * step[k]).astype(model[k].dtype) for k in model}
