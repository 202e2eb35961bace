"""The ServerApp's work: find the clients, run the rounds, evaluate, record.

The round loop is ours rather than ``Strategy.start`` so that every round can be
timed, recorded and shown as it ends, waits are bounded and abortable, and too
few replies stop the run with a message instead of silently reusing the model.
The strategy keeps Flower's four-method interface.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid
from torch import nn

from clients.training import evaluate
from fedsim import protocol as keys
from fedsim.data import FederatedData
from fedsim.models import build_model
from fedsim.replies import expected_arrays, expected_metrics, screen_evaluate, screen_train
from fedsim.results import RoundRecord, RunDirectory, Summary
from fedsim.scenario import Scenario
from strategies.budget import Budget
from strategies.registry import build_strategy
from strategies.sampling import SeededSampling

POLL_S = 0.02  # between pulls for replies; cheap on the in-memory grid


class RunError(RuntimeError):
    """The run cannot go on (clients failing, none connected); the message says why."""


class Abort(threading.Event):
    """Set from outside the server (Ctrl-C, a failed engine) to end its waits at once."""

    reason = "stopped"

    def stop(self, reason: str) -> None:
        self.reason = reason
        self.set()


class Reporter(Protocol):
    def started(self, scenario: Scenario, population: int) -> None: ...
    def round_done(self, record: RoundRecord) -> None: ...
    def warn(self, text: str) -> None: ...


@dataclass(frozen=True)
class Job:
    """Everything the server needs, prepared (and validated) before any client starts."""

    scenario: Scenario
    data: FederatedData
    data_root: Path | None
    out: RunDirectory
    started_at: float  # time.perf_counter() when the user's command began


def serve(grid: Grid, job: Job, reporter: Reporter, abort: Abort) -> Summary:
    """Run every round; always close the run folder, with the error if one stopped it."""
    scenario = job.scenario
    data = job.data
    model = build_model(scenario.model, data.input_shape, data.num_classes, scenario.seed)
    arrays = ArrayRecord(model.state_dict())
    error: str | None = None
    stop: str | None = None  # why the privacy budget ended training early
    budget: Budget | None = None
    try:
        budget = Budget(scenario, [len(c) for c in data.clients]) if scenario.privacy else None
        timeout = scenario.resources.round_timeout_s
        partitions = discover_partitions(grid, len(data.clients), timeout, abort)
        strategy = build_strategy(scenario, partitions)
        reporter.started(scenario, len(partitions))
        config = {keys.SCENARIO: scenario.to_toml(), keys.DATA_ROOT: str(job.data_root or "")}
        for server_round in range(1, scenario.rounds + 1):
            if budget is not None:  # spent before the round: its clients may release even if it fails
                cohort = strategy.sampled_partitions("train", server_round)
                if stop := budget.refusal(server_round, cohort):
                    reporter.warn(stop)
                    break
                budget.spend(cohort)
            arrays, record = _round(grid, job, strategy, arrays, model, config, server_round, reporter, abort)
            if budget is not None:
                record = dataclasses.replace(record, epsilon=budget.epsilon(), delta=budget.delta)
            job.out.append(record)
            reporter.round_done(record)
    except BaseException as exc:
        error = _describe(exc)
        raise
    finally:
        model.load_state_dict(arrays.to_torch_state_dict())
        summary = job.out.finish(
            model.state_dict(),
            time.perf_counter() - job.started_at,
            error,
            privacy_stop=stop,
            epsilon=budget.epsilon() if budget is not None else None,
        )
    return summary


def _describe(exc: BaseException) -> str:
    if isinstance(exc, RunError):
        return str(exc)
    if isinstance(exc, KeyboardInterrupt | SystemExit):  # Ctrl-C, or `flwr stop` ending the ServerApp
        return "stopped before the last round (interrupted)"
    return f"{type(exc).__name__}: {exc}"


def _round(
    grid: Grid,
    job: Job,
    strategy: SeededSampling,
    arrays: ArrayRecord,
    model: nn.Module,
    config: dict[str, str],
    server_round: int,
    reporter: Reporter,
    abort: Abort,
) -> tuple[ArrayRecord, RoundRecord]:
    scenario = job.scenario
    timeout = scenario.resources.round_timeout_s
    started = time.perf_counter()
    sent = list(strategy.configure_train(server_round, arrays, ConfigRecord(dict(config)), grid))
    received = exchange(grid, sent, timeout, abort)
    # Counted before screening and aggregation: every byte crossed the wire, and some
    # strategies (FedMedian, FedTrimmedAvg) empty the replies.
    bytes_sent, bytes_received = array_bytes(sent), array_bytes(received)
    screened = (
        screen_train(received, arrays, expected_arrays(sent[0]), expected_metrics(sent[0]))
        if sent
        else screen_train(received, arrays)
    )
    for reason in screened.rejected:  # each one: the operator needs to know which node misbehaves
        reporter.warn(f"round {server_round}: dropped the reply of {reason}")
    replies = screened.accepted
    ok = _check_replies(
        server_round, sent, replies, screened.rejected, scenario.strategy.min_train_clients, reporter
    )
    new_arrays, train_metrics = strategy.aggregate_train(server_round, replies)
    arrays = in_dtypes_of(arrays, new_arrays) if new_arrays is not None else arrays
    round_time = time.perf_counter() - started

    started = time.perf_counter()
    accuracy = loss = fed_accuracy = fed_loss = None
    if server_round % scenario.evaluation.every == 0 or server_round == scenario.rounds:
        if scenario.evaluation.centralized:
            model.load_state_dict(arrays.to_torch_state_dict())
            loss, accuracy = evaluate(model, job.data.test)
        asked = list(strategy.configure_evaluate(server_round, arrays, ConfigRecord(dict(config)), grid))
        if asked:
            bytes_sent += array_bytes(asked)
            received = exchange(grid, asked, timeout, abort)
            bytes_received += array_bytes(received)
            answers = screen_evaluate(received)
            for reason in answers.rejected:
                reporter.warn(f"round {server_round}: dropped the evaluation reply of {reason}")
            fed = strategy.aggregate_evaluate(server_round, answers.accepted)
            if fed is not None:
                fed_loss = keys.number(fed, keys.EVAL_LOSS)
                fed_accuracy = keys.number(fed, keys.EVAL_ACCURACY)
    record = RoundRecord(
        round=server_round,
        accuracy=accuracy,
        loss=loss,
        train_loss=keys.number(train_metrics, keys.TRAIN_LOSS) if train_metrics else None,
        fed_accuracy=fed_accuracy,
        fed_loss=fed_loss,
        clients_sampled=len(sent),
        clients_failed=len(sent) - ok,
        round_time_s=round_time,
        eval_time_s=time.perf_counter() - started,
        bytes_sent=bytes_sent,
        bytes_received=bytes_received,
    )
    return arrays, record


def in_dtypes_of(model: ArrayRecord, new: ArrayRecord) -> ArrayRecord:
    """``new`` with each array in ``model``'s dtype.

    Flower's FedAdam, FedYogi, FedAdagrad and QFedAvg step with NumPy float64 scalars,
    which promote float32 weights to float64: sent on as is, the model would double
    in size (and in bytes sent) for precision the clients' float32 models drop.
    """
    if all(new[k].dtype == model[k].dtype for k in new):
        return new
    return ArrayRecord({k: Array(np.asarray(a.numpy(), dtype=model[k].dtype)) for k, a in new.items()})


def array_bytes(messages: Iterable[Message]) -> int:
    """Bytes of the model arrays the messages carry (Flower's ``ArrayRecord.count_bytes``)."""
    return sum(
        record.count_bytes()
        for message in messages
        if not message.has_error()
        for record in message.content.array_records.values()
    )


def _check_replies(
    server_round: int,
    sent: list[Message],
    replies: list[Message],
    rejected: list[str],
    minimum: int,
    reporter: Reporter,
) -> int:
    """Count good replies; warn about failures (rejected replies included); stop below ``minimum``."""
    errors = [r.error.reason for r in replies if r.has_error()]
    ok = len(replies) - len(errors)
    failed = len(sent) - ok
    if failed:
        missing = len(sent) - len(replies) - len(rejected)
        reasons = [*errors, *(f"rejected reply from {r}" for r in rejected)]
        why = reasons[0] if reasons else "no reply before resources.round_timeout_s"
        detail = f"{len(errors)} raised, {len(rejected)} rejected, {missing} did not answer; first: {why}"
        if ok < minimum:
            raise RunError(
                f"round {server_round}: {ok} of {len(sent)} sampled clients replied, fewer than "
                f"strategy.min_train_clients = {minimum} ({detail})"
            )
        reporter.warn(f"round {server_round}: {failed} of {len(sent)} clients failed ({detail})")
    return ok


def discover_partitions(grid: Grid, expected: int, timeout: float, abort: Abort) -> dict[int, int]:
    """Ask every node which partition it holds: node id -> partition id, covering 0..expected-1.

    ``expected`` is the data's client count (``len(FederatedData.clients)``), which
    text data sets decide themselves (one client per role or file).
    """
    deadline = time.monotonic() + timeout
    while len(nodes := list(grid.get_node_ids())) < expected:
        if time.monotonic() > deadline or abort.is_set():
            raise RunError(f"only {len(nodes)} of the data's {expected} clients connected")
        time.sleep(0.5)
    asked = [Message(RecordDict(), dst_node_id=n, message_type=MessageType.QUERY) for n in nodes]
    replies = exchange(grid, asked, timeout, abort)
    errors = [r.error.reason for r in replies if r.has_error()]
    if errors or len(replies) < len(asked):
        raise RunError(
            f"{len(asked) - len(replies) + len(errors)} clients failed to start: "
            f"{errors[0] if errors else 'no reply before resources.round_timeout_s'}"
        )
    partitions = {
        r.metadata.src_node_id: int(keys.number(r.content.metric_records[keys.METRICS], keys.PARTITION_ID))
        for r in replies
    }
    if sorted(partitions.values()) != list(range(expected)):
        raise RunError(
            f"the clients hold partitions {sorted(partitions.values())[:10]}..., "
            f"but the data has {expected} clients (partitions 0..{expected - 1})"
        )
    return partitions


def exchange(grid: Grid, messages: Iterable[Message], timeout: float, abort: Abort) -> list[Message]:
    """Send, then collect replies until all are in, ``timeout`` passes or ``abort`` is set."""
    waiting = set(grid.push_messages(messages))
    deadline = time.monotonic() + timeout
    replies: list[Message] = []
    while waiting and time.monotonic() < deadline and not abort.is_set():
        got = list(grid.pull_messages(waiting))
        replies.extend(got)
        waiting -= {m.metadata.reply_to_message_id for m in got}
        if waiting:
            abort.wait(POLL_S)
    if abort.is_set():
        raise RunError(abort.reason)
    return replies
