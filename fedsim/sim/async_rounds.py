"""An asynchronous run through the Flower grid: the schedule's steps (strategies/async_schedule.py),
each a new model version.

The schedule says, from the seed alone, which clients start when with which model version and
in which order their updates are applied; this loop only makes it happen.  At step k every task
started since step k - 1 trains from version k - 1, which exists by then: their messages go out
together (the Ray actors train them side by side) and their replies wait, screened, until the
schedule applies them.  So the updates a version applies, and their order, are the virtual
clock's, whichever actor answered first, and two runs with one seed write the same rows.

A client's training stream is its task number (the ``server-round`` of its message), so a task
sent again trains alike.  That is how ``--resume`` goes on: the checkpoint after step k keeps the
model versions that tasks still in flight train from (:class:`Versions`); the resumed loop
replays the schedule to step k and sends those tasks again.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid
from torch import nn

from fedsim import protocol as keys
from fedsim.data import Split
from fedsim.results.per_client import statistics
from fedsim.results.records import RoundRecord
from fedsim.scenario.sections import Scenario
from fedsim.sim import channel, failures, nodes
from fedsim.sim.client_eval import ClientEvaluation, evaluate_clients
from fedsim.sim.client_store import ClientStore
from fedsim.sim.divergence import check_finite
from fedsim.sim.exchange import Abort, RunError, array_bytes, exchange
from fedsim.sim.replies import expected_metrics, extras, screen_train
from fedsim.sim.rounds import Reporter, evaluate_global
from strategies.algorithm import PLAIN
from strategies.async_schedule import NobodyOnline, Step, Task, schedule
from strategies.asynchronous import Arrays, AsyncStrategy, Update
from strategies.clock import task_s
from strategies.devices import Devices, draw
from strategies.placement import Placement


@dataclass
class Versions:
    """The model versions that tasks in flight train from: part of every checkpoint."""

    models: dict[int, Arrays] = field(default_factory=dict)

    def keep_only(self, needed: set[int]) -> None:
        self.models = {v: m for v, m in self.models.items() if v in needed}

    def state(self) -> dict[str, Any]:
        return {"models": {str(v): m for v, m in self.models.items()}}

    def restore(self, state: dict[str, Any]) -> None:
        self.models = {int(v): {k: np.asarray(a) for k, a in m.items()} for v, m in state["models"].items()}


@dataclass
class AsyncLoop:
    grid: Grid
    scenario: Scenario
    test: Split
    strategy: AsyncStrategy
    model: nn.Module  # the server's copy, for centralized evaluation
    config: Mapping[str, str | bytes]
    reporter: Reporter
    abort: Abort
    clients: ClientStore
    placement: Placement
    examples: np.ndarray  # each partition's training examples: its steps, hence its time
    task_bytes: tuple[int, int]  # a train message's model and its reply's, encoded (channel.task_bytes)
    versions: Versions = field(default_factory=Versions)
    devices: Devices = field(init=False)
    flight: dict[int, Task] = field(default_factory=dict)  # started, not yet applied, by number
    replies: dict[int, Message] = field(default_factory=dict)  # received, not yet applied
    sent: set[int] = field(default_factory=set)  # task numbers sent in this session
    # A client's state from a reply not yet applied: stored only once applied, so a checkpoint
    # never holds the state of a task still in flight (which a resume sends again).
    pending: dict[int, dict[str, Any]] = field(default_factory=dict)
    applied: list[Message] = field(default_factory=list)  # the last step's good replies
    steps: Any = field(init=False)
    clock: float = 0.0

    def __post_init__(self) -> None:
        s = self.scenario
        self.devices = draw(s.devices, s.seed, self.placement.population)
        self.steps = schedule(
            self.devices, self.duration, s.seed, self.strategy.buffer_size, self.strategy.max_concurrency
        )

    def duration(self, partition: int) -> float:
        """A task's virtual seconds: the model down, the local steps, the update up."""
        d = self.devices
        steps = self.scenario.client.local_steps(float(self.examples[partition]))
        compute, down, up = (float(x[partition]) for x in (d.compute, d.downlink_mbps, d.uplink_mbps))
        return task_s(self.task_bytes[0], steps, self.task_bytes[1], compute, down, up)

    def replay(self, done: int) -> None:
        """Go through the schedule's first ``done`` steps without training: a resumed run's start.
        The tasks then in flight are sent again, from the versions the checkpoint kept."""
        for _ in range(done):
            step = next(self.steps)
            self._track(step)
            self.clock = step.time_s

    def run(self, server_round: int, arrays: ArrayRecord) -> tuple[ArrayRecord, RoundRecord]:
        started = time.perf_counter()
        try:
            step: Step = next(self.steps)
        except NobodyOnline as error:
            raise RunError(str(error)) from None
        assert step.version == server_round, (step.version, server_round)
        self.versions.models[step.version - 1] = {k: a.numpy() for k, a in arrays.items()}
        # After a resume the tasks in flight are sent again: the run's traffic counted them once already.
        again = [t for t in self.flight.values() if t.number not in self.sent]
        self._send(again, dataclasses.replace(step, started=()))
        sent, received = self._send([], step)
        updates, failed = self._updates(step)
        current = self.versions.models[step.version - 1]
        new = ArrayRecord({k: Array(v) for k, v in self.strategy.aggregate(current, updates).items()})
        check_finite(server_round, new, self.scenario)
        previous, self.clock = self.clock, step.time_s
        self._track(step)
        self.versions.keep_only({t.version for t in self.flight.values()})
        round_time = time.perf_counter() - started
        began_eval = time.perf_counter()
        accuracy, loss = self._evaluate(server_round, new)
        own = self._evaluate_clients(server_round, new)
        staleness = [u.staleness for u in updates]
        record = RoundRecord(
            round=server_round,
            accuracy=accuracy,
            loss=loss,
            train_loss=_mean_loss(self.applied),
            fed_accuracy=None,
            fed_loss=None,
            clients_sampled=len(step.started),
            clients_failed=failed.total,
            round_time_s=round_time,
            eval_time_s=time.perf_counter() - began_eval,
            bytes_sent=sent + (own.bytes_sent if own else 0),
            bytes_received=received + (own.bytes_received if own else 0),
            clients_raised=failed.raised,
            clients_crashed=failed.crashed,
            clients_out_of_memory=failed.out_of_memory,
            clients_timed_out=failed.timed_out,
            clients_rejected=failed.rejected,
            simulated_time_s=round(self.clock - previous, 6),
            virtual_time_s=round(self.clock, 6),
            extra={
                "staleness_mean": float(np.mean(staleness)) if staleness else 0.0,
                "staleness_max": float(max(staleness, default=0)),
                **(statistics(own.outcomes) if own else {}),
            },
            clients=tuple(own.outcomes) if own else (),
        )
        return new, record

    def _track(self, step: Step) -> None:
        """The schedule's bookkeeping: the step's tasks start and its applied ones land."""
        for task in step.started:
            self.flight[task.number] = task
        for task in step.applied:
            self.flight.pop(task.number, None)
            self.replies.pop(task.number, None)

    def _send(self, again: list[Task], step: Step) -> tuple[int, int]:
        """Send the step's new tasks (and, after a resume, those in flight); keep their replies.

        In waves: a node stands in for one client at a time (a pool's size at most), and a client
        that starts again within the step (a fast one) goes in a later wave than its first task,
        whose reply brings the state its next task starts from.
        """
        pool = len(self.placement.nodes)
        waves: list[list[Task]] = []
        last: dict[int, int] = {}  # partition -> the last wave holding one of its tasks
        for task in sorted([*again, *step.started], key=lambda t: t.number):
            after = last.get(task.partition, -1) + 1
            index = next((i for i in range(after, len(waves)) if len(waves[i]) < pool), len(waves))
            if index == len(waves):
                waves.append([])
            waves[index].append(task)
            last[task.partition] = index
        sent = received = 0
        for wave in waves:
            out, came = self._send_wave(wave, step)
            sent, received = sent + out, received + came
        return sent, received

    def _send_wave(self, tasks: list[Task], step: Step) -> tuple[int, int]:
        if not tasks:
            return 0, 0
        for task in tasks:  # its previous task's reply is in: what the client kept since, it starts from
            if (state := self.pending.pop(task.partition, None)) is not None:
                self.clients.put(task.partition, state)
        placed = self.placement.place([t.partition for t in tasks])
        carried = self._downlink({t.version for t in tasks})
        messages = [self._message(t, n, carried[t.version]) for t, n in zip(tasks, placed, strict=True)]
        if self.placement.pooled:
            messages = self.clients.attach(messages, self.placement.partition_of)
        by_node = {n: t for t, n in zip(tasks, placed, strict=True)}
        self.sent.update(t.number for t in tasks)
        timeout = self.scenario.resources.round_timeout_s
        replies = exchange(self.grid, messages, timeout, self.abort)
        nodes.take(replies)  # which Ray node trained: no concern of the strategy's
        reference = ArrayRecord({k: Array(v) for k, v in self.versions.models[step.version - 1].items()})
        builtin = self.scenario.client.update == "sgd"
        metrics = expected_metrics(messages[0], builtin)
        # From a pooled node, the reply carries what the client keeps (topk's residual, if any).
        extra = extras(PLAIN, reference, (), self.placement.pooled, self.scenario.compression.uplink)
        for version, record in carried.items():  # each reply decoded against the model it was sent
            mine = [r for r in replies if by_node[r.metadata.src_node_id].version == version]
            decoded = channel.decode_replies(mine, record, reference, self.scenario)
            screened = screen_train(decoded, reference, extra, metrics, exact=builtin)
            for reason in screened.rejected:
                self.reporter.warn(f"round {step.version}: dropped the reply of {reason}")
            for reply in screened.accepted:
                task = by_node[reply.metadata.src_node_id]
                self.replies[task.number] = reply
                if not reply.has_error() and (state := self.clients.take(reply)) is not None:
                    self.pending[task.partition] = state  # the store's once applied (or the client restarts)
        return array_bytes(messages), array_bytes(replies)

    def _downlink(self, versions: set[int]) -> dict[int, ArrayRecord]:
        """Each version's model as its messages carry it, encoded from the version's own stream,
        so a task sent again after a resume gets the very bytes it got first."""
        out = {}
        for v in sorted(versions):
            record = ArrayRecord({k: Array(a) for k, a in self.versions.models[v].items()})
            probe = Message(RecordDict({keys.ARRAYS: record}), dst_node_id=0, message_type=MessageType.TRAIN)
            (encoded,) = channel.encode_downlink([probe], self.scenario, v + 1, "train")
            out[v] = encoded.content.array_records[keys.ARRAYS]
        return out

    def _message(self, task: Task, node: int, arrays: ArrayRecord) -> Message:
        config = ConfigRecord(
            {
                **dict(self.config),
                keys.SERVER_ROUND: task.number,
                **({keys.PARTITION_ID: task.partition} if self.placement.pooled else {}),
            }
        )
        content = RecordDict({keys.ARRAYS: arrays, keys.CONFIG: config})
        return Message(content=content, message_type=MessageType.TRAIN, dst_node_id=node)

    def _updates(self, step: Step) -> tuple[list[Update], failures.Failures]:
        """The step's updates in arrival order; a task with no good reply adds none."""
        updates, errors, missing = [], [], 0
        self.applied = []
        for task in step.applied:
            reply = self.replies.get(task.number)
            if reply is None:
                missing += 1
                continue
            if reply.has_error():
                errors.append(reply.error.reason or f"error {reply.error.code}")
                continue
            self.applied.append(reply)
            if (state := self.pending.pop(task.partition, None)) is not None:
                self.clients.put(task.partition, state)
            metrics = reply.content.metric_records[keys.METRICS]
            updates.append(
                Update(
                    model=keys.to_numpy(reply.content.array_records[keys.ARRAYS]),
                    base=self.versions.models[task.version],
                    staleness=step.version - 1 - task.version,
                    num_examples=int(keys.number(metrics, keys.NUM_EXAMPLES)),
                    partition=task.partition,
                )
            )
        if errors or missing:
            self.reporter.warn(
                f"round {step.version}: {len(errors) + missing} of {len(step.applied)} updates failed"
            )
        return updates, failures.count(errors, timed_out=missing, rejected=0)

    def _evaluate_clients(self, server_round: int, arrays: ArrayRecord) -> ClientEvaluation | None:
        """Every chosen client's own test data ([evaluation] clients), its nodes shared with the
        tasks in flight (their messages are waited for in turn)."""
        if not self.scenario.evaluates_clients(server_round):
            return None
        s, warn = self.scenario, self.reporter.warn
        return evaluate_clients(
            self.grid,
            s,
            self.placement,
            self.clients,
            self.config,
            arrays,
            server_round,
            self.abort,
            False,
            warn,
        )

    def _evaluate(self, server_round: int, arrays: ArrayRecord) -> tuple[float | None, float | None]:
        if not self.scenario.evaluation.centralized or not self.scenario.evaluates(server_round):
            return None, None
        loss, accuracy = evaluate_global(self.model, arrays, self.test)
        return accuracy, loss


def _mean_loss(replies: list[Message]) -> float | None:
    """The applied updates' training loss, weighted by their examples."""
    metrics = [r.content.metric_records[keys.METRICS] for r in replies]
    pairs = [(keys.number(m, keys.TRAIN_LOSS), keys.number(m, keys.NUM_EXAMPLES)) for m in metrics]
    total = sum(n for _, n in pairs)
    return sum(loss * n for loss, n in pairs) / total if total else None
