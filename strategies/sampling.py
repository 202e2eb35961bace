"""Reproducible client sampling around any Flower strategy.

Flower's strategies sample with the global ``random`` over random node ids, so a
run cannot be repeated.  :class:`SeededSampling` picks the round's partition ids
from ``(seed, stage, round)`` and shows the wrapped strategy only those nodes; it
also hands replies on in partition-id order, so float sums in the aggregation do
not depend on which client answered first.

Training cohorts are ``m`` of ``N`` without replacement, or, with ``[privacy]
sampling = "poisson"``, every client independently with rate ``q`` (the sampling that
DP-FedAvg's privacy amplification assumes, McMahan et al. 2018): the cohort's size
varies and may be empty.  An empty round sends nothing; the wrapped strategy still
prepares the round (as for one client), so central DP can release the model plus
noise, as its fixed-denominator estimator does with no updates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy
from flwr.supercore.run import Run

from fedsim.seeding import generator
from strategies.cohorts import cohort_size

__all__ = ["SeededSampling", "cohort_size", "poisson_partitions", "sample_partitions"]


def sample_partitions(seed: int, stage: str, server_round: int, population: int, size: int) -> list[int]:
    """``size`` distinct partition ids out of ``range(population)``, sorted."""
    rng = generator(seed, "sample", stage, server_round)
    return sorted(int(p) for p in rng.choice(population, size=size, replace=False))


def poisson_partitions(seed: int, stage: str, server_round: int, population: int, rate: float) -> list[int]:
    """Each of ``range(population)`` independently with probability ``rate``, sorted."""
    rng = generator(seed, "sample", stage, server_round)
    return [int(p) for p in np.flatnonzero(rng.random(population) < rate)]


class SeededSampling(Strategy):
    """Wrap ``inner`` (configured to use every node it is shown) with seeded sampling."""

    def __init__(
        self,
        inner: Strategy,
        partitions: Mapping[int, int],
        seed: int,
        train_size: int,
        evaluate_size: int,
        train_rate: float | None = None,
    ) -> None:
        self.inner = inner
        self.partition_of = dict(partitions)  # node id -> partition id
        self.node_of = {p: n for n, p in self.partition_of.items()}
        self.seed = seed
        self.sizes = {"train": train_size, "evaluate": evaluate_size}
        self.train_rate = train_rate  # set: Poisson sampling of the training cohort

    def sampled_partitions(self, stage: str, server_round: int) -> list[int]:
        """The partition ids that ``stage`` of ``server_round`` addresses (known before it runs)."""
        population = len(self.node_of)
        if stage == "train" and self.train_rate is not None:
            return poisson_partitions(self.seed, stage, server_round, population, self.train_rate)
        return sample_partitions(self.seed, stage, server_round, population, self.sizes[stage])

    def sampled_nodes(self, stage: str, server_round: int) -> list[int]:
        return [self.node_of[p] for p in self.sampled_partitions(stage, server_round)]

    def in_partition_order(self, replies: Iterable[Message]) -> list[Message]:
        return sorted(replies, key=lambda m: self.partition_of[m.metadata.src_node_id])

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        nodes = self.sampled_nodes("train", server_round)
        if not nodes:  # an empty Poisson round: prepare it as for one client, send nothing
            self.inner.configure_train(server_round, arrays, config, _Subset(grid, [self.node_of[0]]))
            return []
        return self.inner.configure_train(server_round, arrays, config, _Subset(grid, nodes))

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        return self.inner.aggregate_train(server_round, self.in_partition_order(replies))

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        nodes = self.sampled_nodes("evaluate", server_round)
        if not nodes:
            return []
        return self.inner.configure_evaluate(server_round, arrays, config, _Subset(grid, nodes))

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        return self.inner.aggregate_evaluate(server_round, self.in_partition_order(replies))

    def summary(self) -> None:
        self.inner.summary()


class _Subset(Grid):
    """The real grid, showing only the sampled nodes to the wrapped strategy."""

    def __init__(self, grid: Grid, node_ids: list[int]) -> None:
        self._grid, self._node_ids = grid, node_ids

    def get_node_ids(self) -> Iterable[int]:
        return list(self._node_ids)

    # Everything else is the real grid's.
    def set_run(self, run: Run) -> None:
        self._grid.set_run(run)

    @property
    def run(self) -> Run:
        return self._grid.run

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        return self._grid.create_message(content, message_type, dst_node_id, group_id, ttl)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self._grid.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self._grid.pull_messages(message_ids)

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        return self._grid.send_and_receive(messages, timeout=timeout)
