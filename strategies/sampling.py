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

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy
from flwr.supercore.run import Run

from fedsim import protocol as keys
from strategies.draws import poisson_partitions, sample_partitions
from strategies.placement import Placement
from strategies.plan import RoundPlan


class SeededSampling(Strategy):
    """Wrap ``inner`` (configured to use every node it is shown) with seeded sampling.

    ``placement`` says which node each sampled partition's message goes to
    (strategies/placement.py); from a pool of nodes each stage's messages name their
    partition.  ``partition_of`` and ``node_of`` are the current stage's.
    """

    def __init__(
        self,
        inner: Strategy,
        placement: Placement,
        seed: int,
        train_size: int,
        evaluate_size: int,
        train_rate: float | None = None,
    ) -> None:
        self.inner = inner
        self.placement = placement
        self.seed = seed
        self.sizes = {"train": train_size, "evaluate": evaluate_size}
        self.train_rate = train_rate  # set: Poisson sampling of the training cohort

    @property
    def partition_of(self) -> dict[int, int]:
        """node id -> partition id."""
        return self.placement.partition_of

    @property
    def node_of(self) -> dict[int, int]:
        """partition id -> node id."""
        return self.placement.node_of

    def sampled_partitions(self, stage: str, server_round: int) -> list[int]:
        """The partition ids that ``stage`` of ``server_round`` addresses (known before it runs)."""
        population = self.placement.population
        if stage == "train" and self.train_rate is not None:
            return poisson_partitions(self.seed, stage, server_round, population, self.train_rate)
        return sample_partitions(self.seed, stage, server_round, population, self.sizes[stage])

    def in_partition_order(self, replies: Iterable[Message]) -> list[Message]:
        return sorted(replies, key=lambda m: self.partition_of[m.metadata.src_node_id])

    def configure_train(
        self,
        server_round: int,
        arrays: ArrayRecord,
        config: ConfigRecord,
        grid: Grid,
        plan: RoundPlan | None = None,
    ) -> Iterable[Message]:
        """Messages to the round's sample; with a ``plan``, to its clients, each told its part.

        The plan (strategies/plan.py) names the sample, leaves out dropped stragglers
        and adds a straggler's epochs or an injected fault to that client's config.
        """
        parts = self.sampled_partitions("train", server_round) if plan is None else plan.trains()
        if not parts:  # e.g. an empty Poisson round: prepare it as for one client, send nothing
            nodes = list(self.placement.nodes[:1])
            self.inner.configure_train(server_round, arrays, config, _Subset(grid, nodes))
            return []
        nodes = self.placement.place(parts)
        messages = self.inner.configure_train(server_round, arrays, config, _Subset(grid, nodes))
        return [self._addressed(m, plan) for m in messages]

    def _addressed(self, message: Message, plan: RoundPlan | None) -> Message:
        """``message`` with its partition named (from a pool) and its client's part of the plan."""
        partition = self.partition_of[message.metadata.dst_node_id]
        extra = {keys.PARTITION_ID: partition} if self.placement.pooled else {}
        return _with_config(message, {**extra, **(plan.of(partition).config() if plan else {})})

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        return self.inner.aggregate_train(server_round, self.in_partition_order(replies))

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        parts = self.sampled_partitions("evaluate", server_round)
        if not parts:
            return []
        nodes = self.placement.place(parts)
        messages = self.inner.configure_evaluate(server_round, arrays, config, _Subset(grid, nodes))
        return [self._addressed(m, None) for m in messages]

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        return self.inner.aggregate_evaluate(server_round, self.in_partition_order(replies))

    def summary(self) -> None:
        self.inner.summary()


def _with_config(message: Message, extra: Mapping[str, int | str]) -> Message:
    """``message`` with ``extra`` keys in its config; Flower's strategies share one content."""
    if extra:
        content = message.content
        config = ConfigRecord({**content.config_records[keys.CONFIG], **extra})
        message.content = RecordDict({**dict(content.items()), keys.CONFIG: config})
    return message


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
