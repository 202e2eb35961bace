"""One federated round: plan, train (retried while too few clients deliver), aggregate, evaluate.

The loop is ours rather than ``Strategy.start`` so that every round can be timed,
recorded and shown as it ends, waits are bounded and abortable, and too few replies
retry the round or stop the run with a message instead of silently reusing the model.
The strategy keeps Flower's four-method interface.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from torch import nn

from clients.training import evaluate
from fedsim import protocol as keys
from fedsim.data import Split
from fedsim.results.per_client import ClientOutcome, statistics
from fedsim.results.records import RoundRecord
from fedsim.scenario.sections import Scenario
from fedsim.sim import channel, cohort_engine, failures, nodes
from fedsim.sim.client_eval import evaluate_clients
from fedsim.sim.client_store import ClientStore
from fedsim.sim.cohort_choice import uses_cohorts
from fedsim.sim.divergence import check_finite
from fedsim.sim.exchange import Abort, RunError, array_bytes, exchange
from fedsim.sim.failures import Failures
from fedsim.sim.replies import Screened, expected_metrics, extras, screen_evaluate, screen_train
from fedsim.sim.timing import start_when_online, time_replies
from strategies.algorithm import Algorithm
from strategies.budget import Budget, BudgetSpent
from strategies.devices import Devices, draw
from strategies.plan import RoundPlan, plan_round
from strategies.sampling import SeededSampling


class Reporter(Protocol):
    def started(self, scenario: Scenario, population: int, notes: Sequence[str] = ()) -> None:
        """The run begins; ``notes``: lines to show first (how the clients train, ...)."""

    def round_done(self, record: RoundRecord) -> None: ...
    def warn(self, text: str) -> None: ...


@dataclass(frozen=True)
class Attempt:
    """One try at a round's training."""

    plan: RoundPlan
    replies: list[Message]  # screened replies, error replies included (the strategy skips those)
    delivered: int  # replies fit to aggregate
    failures: Failures
    first_problem: str | None  # an example for the warning
    bytes_sent: int
    bytes_received: int
    simulated_time_s: float  # on the virtual clock: waiting for clients online, then for their replies
    late: int = 0  # replies that arrived after the round ended (strategy.round_deadline_s, over_selection)
    client_nodes: dict[str, int] = field(default_factory=dict)  # delivering clients per Ray node


@dataclass(frozen=True)
class Evaluation:
    accuracy: float | None = None
    loss: float | None = None
    fed_accuracy: float | None = None
    fed_loss: float | None = None
    bytes_sent: int = 0
    bytes_received: int = 0
    extra: dict[str, float] = field(default_factory=dict)  # the strategy's other evaluation metrics
    clients: tuple[ClientOutcome, ...] = ()  # per-client evaluation's ([evaluation] clients)


@dataclass
class RoundLoop:
    grid: Grid
    scenario: Scenario
    test: Split  # centralized evaluation's data
    strategy: SeededSampling
    model: nn.Module  # the server's copy, for centralized evaluation
    config: Mapping[str, str | bytes]  # every message's config: the scenario, the data root, ...
    reporter: Reporter
    abort: Abort
    clients: ClientStore  # what each client keeps between its rounds, for pooled nodes
    population: int
    algorithm: Algorithm  # what the strategy declares (strategies/algorithm.py)
    budget: Budget | None = None  # [privacy]: the accountant, and target_epsilon
    balance: cohort_engine.Balance | None = None  # the cohort engine's groups, where the actors are known
    clock: float = 0.0  # virtual seconds when the next round starts (fedsim/sim/timing.py)
    devices: Devices = field(init=False)

    def __post_init__(self) -> None:
        self.devices = draw(self.scenario.devices, self.scenario.seed, self.population)

    def run(self, server_round: int, arrays: ArrayRecord) -> tuple[ArrayRecord, RoundRecord]:
        started = time.perf_counter()
        attempts = self._train(server_round, arrays)
        self.clock = round(self.clock, 3)  # as its row keeps it: a resumed run reads the row's back
        new_arrays, train_metrics = self.strategy.aggregate_train(server_round, attempts[-1].replies)
        if new_arrays is not None:
            arrays = in_dtypes_of(arrays, new_arrays)
            check_finite(server_round, arrays, self.scenario)  # before any client, checkpoint or file
        round_time = time.perf_counter() - started
        started = time.perf_counter()
        ev = self._evaluate(server_round, arrays)
        failed = sum((a.failures for a in attempts), Failures())
        train_loss = train_metrics.get(keys.TRAIN_LOSS) if train_metrics else None
        record = RoundRecord(
            round=server_round,
            accuracy=ev.accuracy,
            loss=ev.loss,
            train_loss=float(train_loss) if isinstance(train_loss, int | float) else None,
            fed_accuracy=ev.fed_accuracy,
            fed_loss=ev.fed_loss,
            clients_sampled=sum(len(a.plan.clients) for a in attempts),
            clients_failed=failed.total,
            round_time_s=round_time,
            eval_time_s=time.perf_counter() - started,
            bytes_sent=sum(a.bytes_sent for a in attempts) + ev.bytes_sent,
            bytes_received=sum(a.bytes_received for a in attempts) + ev.bytes_received,
            clients_raised=failed.raised,
            clients_crashed=failed.crashed,
            clients_out_of_memory=failed.out_of_memory,
            clients_timed_out=failed.timed_out,
            clients_rejected=failed.rejected,
            stragglers=sum(a.plan.stragglers for a in attempts),
            retries=len(attempts) - 1,
            simulated_time_s=sum(a.simulated_time_s for a in attempts),
            virtual_time_s=self.clock,
            clients_late=sum(a.late for a in attempts),
            epsilon=self.budget.epsilon() if self.budget else None,
            delta=self.budget.delta if self.budget else None,
            client_nodes=nodes.total(a.client_nodes for a in attempts),
            extra={**strategy_metrics(train_metrics, TRAIN_OWN, ""), **ev.extra},
            clients=ev.clients,
        )
        return arrays, record

    def _train(self, server_round: int, arrays: ArrayRecord) -> list[Attempt]:
        """Attempts until one delivers ``strategy.min_train_clients`` replies (the last is used)."""
        retries = self.scenario.faults.round_retries
        attempts: list[Attempt] = []
        for attempt in range(retries + 1):
            attempts.append(self._attempt(server_round, arrays, attempt))
            shortfall = check_delivery(server_round, attempts[-1], self.scenario, self.reporter)
            if shortfall is None:
                return attempts
            if attempt < retries:
                self.reporter.warn(f"{shortfall}; retrying with a new sample ({attempt + 1} of {retries})")
        assert shortfall is not None
        if any(a.failures.out_of_memory for a in attempts):
            shortfall += "; " + failures.out_of_memory_advice(self.scenario)
        raise RunError(shortfall)

    def _attempt(self, server_round: int, arrays: ArrayRecord, attempt: int) -> Attempt:
        began = self.clock
        self.clock = start_when_online(self.devices, self.clock, self.scenario.strategy.min_train_clients)
        plan = plan_round(
            self.scenario, server_round, attempt, self.population, self.devices.online(self.clock)
        )
        self._spend(server_round, attempt, plan.trains())
        config = ConfigRecord(dict(self.config))
        sent = list(self.strategy.configure_train(server_round, arrays, config, self.grid, plan))
        sent = channel.encode_downlink(sent, self.scenario, server_round, "train")
        pooled = self.strategy.placement.pooled
        if pooled:  # a pooled node keeps no client's state: it travels along
            sent = self.clients.attach(sent, self.strategy.partition_of)
        # A dropout never gets its message; the server, not knowing, waits the round out.
        withheld = {self.strategy.node_of[c.partition] for c in plan.clients if c.fault == "dropout"}
        delivered = [m for m in sent if m.metadata.dst_node_id not in withheld]
        received = self._exchange_train(delivered, linger=bool(withheld))
        named = nodes.take(received)  # before screening: which node trained is no strategy's business
        carried = sent[0].content.array_records[keys.ARRAYS] if sent else arrays
        decoded = channel.decode_replies(received, carried, arrays, self.scenario)  # copies: bytes as sent
        screened = self._screen(decoded, arrays, sent[0] if sent else None, pooled)
        for reason in screened.rejected:  # each one: the operator needs to know which node misbehaves
            self.reporter.warn(f"round {server_round}: dropped the reply of {reason}")
        missing = len(sent) - len(received)
        to_node = {m.metadata.dst_node_id: m for m in delivered}
        partition_of = self.strategy.partition_of
        good = [r for r in screened.accepted if not r.has_error()]
        came = {r.metadata.src_node_id: r for r in received}  # as they travelled: encoded
        timed = time_replies(
            self.scenario, self.devices, plan, good, to_node, came, partition_of, missing > 0
        )
        self.clock += timed.duration_s
        late = {id(r) for r in good} - {id(r) for r in timed.kept}  # trained, but not aggregated
        good = [r for r in good if id(r) not in late]
        for reply in good:  # the client's new state is the store's, no strategy's
            if (state := self.clients.take(reply)) is not None:
                self.clients.put(self.strategy.partition_of[reply.metadata.src_node_id], state)
        errors = [r.error.reason or f"error {r.error.code}" for r in screened.accepted if r.has_error()]
        problems = [*errors, *(f"rejected reply from {r}" for r in screened.rejected)]
        return Attempt(
            plan=plan,
            replies=[r for r in screened.accepted if id(r) not in late],
            delivered=len(good),
            failures=failures.count(errors, timed_out=missing, rejected=len(screened.rejected)),
            first_problem=problems[0] if problems else None,
            bytes_sent=array_bytes(delivered),
            bytes_received=array_bytes(received),
            simulated_time_s=self.clock - began,
            late=len(late),
            client_nodes=nodes.count(good, named),
        )

    def _screen(
        self, received: list[Message], arrays: ArrayRecord, request: Message | None, pooled: bool
    ) -> Screened:
        """The replies fit to aggregate: the records the algorithm declares, shaped like the model."""
        parameters = [name for name, _ in self.model.named_parameters()]
        extra = extras(self.algorithm, arrays, parameters, pooled, self.scenario.compression.uplink)
        if request is None:
            return screen_train(received, arrays, extra)
        builtin = self.scenario.client.update == "sgd"  # a user's update may add metrics of its own
        metrics = expected_metrics(request, builtin, self.algorithm.metrics)
        return screen_train(received, arrays, extra, metrics, exact=builtin)

    def _exchange_train(self, messages: list[Message], linger: bool) -> list[Message]:
        """The replies to the train messages: one per client whichever engine trains them.

        The cohort engine sends one message per group and splits each group's reply into
        its clients' replies (fedsim/sim/cohort_engine.py); bytes are still counted per client.
        """
        timeout = self.scenario.resources.round_timeout_s
        if not uses_cohorts(self.scenario):
            return exchange(self.grid, messages, timeout, self.abort, linger=linger)
        size = self.scenario.resources.cohort_size
        epochs = self.scenario.client.local_epochs
        groups = cohort_engine.group(messages, self.strategy.partition_of, size, epochs, self.balance)
        replies = exchange(self.grid, [g.message for g in groups], timeout, self.abort, linger=linger)
        return cohort_engine.split(replies, groups)

    def _spend(self, server_round: int, attempt: int, cohort: list[int]) -> None:
        """Spend the attempt's privacy before it runs (its clients may release even if it fails).

        A retried attempt is spent again: conservative for central DP, whose failed
        attempt releases no aggregate, exact for local DP and DP-SGD, whose clients did.
        """
        if self.budget is None:
            return
        if refusal := self.budget.refusal(server_round, cohort):
            raise BudgetSpent(refusal + (f" (retry {attempt})" if attempt else ""))
        self.budget.spend(cohort)

    def _evaluate(self, server_round: int, arrays: ArrayRecord) -> Evaluation:
        """The round's evaluations: centralized and federated, then every client's own."""
        ev = self._evaluate_global(server_round, arrays)
        if not self.scenario.evaluates_clients(server_round):
            return ev
        own = evaluate_clients(
            self.grid,
            self.scenario,
            self.strategy.placement,
            self.clients,
            self.config,
            arrays,
            server_round,
            self.abort,
            personal=self.algorithm.personalize is not None,
            warn=self.reporter.warn,
        )
        return dataclasses.replace(
            ev,
            bytes_sent=ev.bytes_sent + own.bytes_sent,
            bytes_received=ev.bytes_received + own.bytes_received,
            extra={**ev.extra, **statistics(own.outcomes)},
            clients=tuple(own.outcomes),
        )

    def _evaluate_global(self, server_round: int, arrays: ArrayRecord) -> Evaluation:
        scenario = self.scenario
        if not scenario.evaluates(server_round):
            return Evaluation()
        accuracy = loss = fed_accuracy = fed_loss = None
        extra: dict[str, float] = {}
        if scenario.evaluation.centralized:
            loss, accuracy = evaluate_global(self.model, arrays, self.test)
        config = ConfigRecord(dict(self.config))
        asked = list(self.strategy.configure_evaluate(server_round, arrays, config, self.grid))
        asked = channel.encode_downlink(asked, scenario, server_round, "evaluate")
        sent = received = 0
        if asked:
            timeout = scenario.resources.round_timeout_s
            replies = exchange(self.grid, asked, timeout, self.abort)
            sent, received = array_bytes(asked), array_bytes(replies)
            answers = screen_evaluate(replies)
            for reason in answers.rejected:
                self.reporter.warn(f"round {server_round}: dropped the evaluation reply of {reason}")
            fed = self.strategy.aggregate_evaluate(server_round, answers.accepted)
            if fed is not None:
                fed_loss = _number(fed.get(keys.EVAL_LOSS))
                fed_accuracy = _number(fed.get(keys.EVAL_ACCURACY))
                extra = strategy_metrics(fed, EVALUATE_OWN, "fed_")
        return Evaluation(accuracy, loss, fed_accuracy, fed_loss, sent, received, extra)


def evaluate_global(model: nn.Module, arrays: ArrayRecord, test: Split) -> tuple[float, float]:
    """(loss, accuracy) of the global model ``arrays`` on the centralized test set, in ``model``."""
    model.load_state_dict(arrays.to_torch_state_dict())
    return evaluate(model, test)


def check_delivery(server_round: int, attempt: Attempt, scenario: Scenario, reporter: Reporter) -> str | None:
    """Warn about failed clients; say the shortfall below ``min_train_clients``, if any."""
    failed = attempt.failures
    if not failed.total:
        return None
    asked = len(attempt.plan.trains())
    why = failures.summary(attempt.first_problem or "no reply before resources.round_timeout_s")
    detail = f"{failed.describe()}; first: {why}"
    minimum = scenario.strategy.min_train_clients
    if failed.out_of_memory:
        reporter.warn(f"round {server_round}: {failures.out_of_memory_advice(scenario)}")
    if attempt.delivered < minimum:
        return (
            f"round {server_round}: {attempt.delivered} of {asked} sampled clients replied, fewer than "
            f"strategy.min_train_clients = {minimum} ({detail})"
        )
    reporter.warn(f"round {server_round}: {failed.total} of {asked} clients failed ({detail})")
    return None


# Metrics a RoundRecord has a field for; a strategy's others are recorded beside them.
TRAIN_OWN = frozenset({keys.TRAIN_LOSS, keys.NUM_EXAMPLES})
EVALUATE_OWN = frozenset({keys.EVAL_LOSS, keys.EVAL_ACCURACY, keys.NUM_EXAMPLES})


def strategy_metrics(metrics: MetricRecord | None, own: frozenset[str], prefix: str) -> dict[str, float]:
    """What a strategy's aggregate returned beyond fedsim's own metrics, as row keys.

    Training metrics keep their names (``train_`` first where one is a RoundRecord field);
    evaluation metrics get ``fed_``, as ``fed_accuracy`` and ``fed_loss`` do.
    """
    if metrics is None:
        return {}
    fields = RoundRecord.field_names()
    out = {}
    for key, value in metrics.items():
        if key in own or not isinstance(value, int | float):
            continue
        name = f"{prefix}{key}" if prefix else (f"train_{key}" if key in fields else key)
        out[name] = float(value)
    return out


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def in_dtypes_of(model: ArrayRecord, new: ArrayRecord) -> ArrayRecord:
    """``new`` with each array in ``model``'s dtype.

    Flower's FedAdam, FedYogi, FedAdagrad and QFedAvg step with NumPy float64 scalars,
    which promote float32 weights to float64: sent on as is, the model would double
    in size (and in bytes sent) for precision the clients' float32 models drop.
    """
    if all(new[k].dtype == model[k].dtype for k in new):
        return new
    with np.errstate(over="ignore"):  # a value too large becomes inf: divergence.check_finite reports it
        return ArrayRecord({k: Array(np.asarray(a.numpy(), dtype=model[k].dtype)) for k, a in new.items()})
