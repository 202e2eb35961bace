"""FedAsync: Xie, Koyejo and Gupta 2019, "Asynchronous Federated Optimization" (arXiv:1903.03934).

Clients train concurrently (``max_concurrency``), each from the model version it was sent; the
server mixes every update in as it arrives: ``w <- (1 - alpha_t) w + alpha_t w_client``, with
``alpha_t = alpha * s(tau)`` for the update's staleness ``tau`` (Section 5.2: ``constant``,
``polynomial`` ``(tau + 1) ** -a``, ``hinge`` with ``a`` and ``b``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fedsim.scenario.tables import Bounds
from strategies.asynchronous import Arrays, AsyncStrategy, StalenessName, Update, staleness_weight


class FedAsync(AsyncStrategy):
    buffer_size = 1  # one update per new model version: the definition of FedAsync

    def __init__(
        self,
        alpha: Annotated[float, Bounds(gt=0, le=1)] = 0.6,
        max_concurrency: Annotated[int, Bounds(ge=1)] = 10,
        staleness: StalenessName = "polynomial",
        a: Annotated[float, Bounds(gt=0)] = 0.5,
        b: Annotated[float, Bounds(ge=0)] = 4.0,
    ) -> None:
        self.alpha, self.max_concurrency = alpha, max_concurrency
        self.staleness, self.a, self.b = staleness, a, b

    def mixing(self, tau: int) -> float:
        """``alpha_t`` for an update ``tau`` versions stale."""
        return self.alpha * staleness_weight(self.staleness, tau, self.a, self.b)

    def aggregate(self, model: Arrays, updates: Sequence[Update]) -> Arrays:
        for update in updates:  # one, but a failed client's slot leaves none
            alpha = self.mixing(update.staleness)
            model = {k: ((1 - alpha) * v + alpha * update.model[k]).astype(v.dtype) for k, v in model.items()}
        return model
