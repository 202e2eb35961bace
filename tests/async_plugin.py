"""A user's asynchronous strategy, as docs/time.md writes it.

``strategy.name = "tests.async_plugin:Latest"``
"""

from __future__ import annotations

from collections.abc import Sequence

import fedsim
from strategies.asynchronous import Arrays, Update


class Latest(fedsim.AsyncStrategy):
    """Take the freshest update whole: FedAsync with alpha = 1 (a baseline, not a method)."""

    def __init__(self, max_concurrency: int = 5) -> None:
        self.buffer_size, self.max_concurrency = 1, max_concurrency

    def aggregate(self, model: Arrays, updates: Sequence[Update]) -> Arrays:
        return dict(updates[-1].model) if updates else model
