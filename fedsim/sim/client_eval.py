"""Per-client evaluation: the global model on each chosen client's own test data, through the
same engine that trains them ([evaluation] clients; fedsim/results/per_client.py says what is
recorded).

Which clients: all, or ``clients`` of them drawn per round from the seed (stage
``"client_eval"``, apart from training's draws, so evaluating changes no training sample).  From
a pool of nodes (strategies/placement.py) the clients go out in waves of the pool's size, each
message naming its client and carrying the client's kept state, so a personalization
algorithm's client evaluates its own model (clients/app.py); the pool's current placement is
left as training set it (an asynchronous run's tasks are in flight on it).  SuperNodes each
evaluate their own client.  Each wave is bounded by ``resources.round_timeout_s``; a client that
fails or does not answer is left out of the round's statistics, and the warning says how many.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid

from fedsim import protocol as keys
from fedsim.results.per_client import ClientOutcome
from fedsim.scenario.sections import Scenario
from fedsim.sim import channel
from fedsim.sim.client_store import ClientStore
from fedsim.sim.exchange import Abort, array_bytes, exchange
from fedsim.sim.replies import EVALUATE_METRICS, screen_evaluate
from strategies.draws import sample_partitions
from strategies.placement import Placement

PERSONAL_METRICS = frozenset({keys.PERSONAL_LOSS, keys.PERSONAL_ACCURACY})


@dataclass(frozen=True)
class ClientEvaluation:
    """A round's per-client evaluation: each answering client's outcome, and what it cost."""

    outcomes: list[ClientOutcome]
    asked: int
    empty: int  # clients that hold no test samples (too few samples to hold any out): not counted
    bytes_sent: int
    bytes_received: int

    @property
    def missing(self) -> int:
        """Clients that failed or did not answer in time."""
        return self.asked - self.empty - len(self.outcomes)


def chosen(scenario: Scenario, server_round: int, population: int) -> list[int]:
    """The clients evaluated in ``server_round``: all, or a sample drawn from the seed."""
    count = scenario.evaluation.client_count(population)
    if count >= population:
        return list(range(population))
    return sample_partitions(scenario.seed, "client_eval", server_round, population, count)


def evaluate_clients(
    grid: Grid,
    scenario: Scenario,
    placement: Placement,
    store: ClientStore,
    config: Mapping[str, str | bytes],
    arrays: ArrayRecord,
    server_round: int,
    abort: Abort,
    personal: bool,
    warn: Callable[[str], None],
) -> ClientEvaluation:
    """Every chosen client's outcome; ``personal``: the algorithm evaluates a personal model too.
    ``warn`` is told how many clients gave none."""
    partitions = chosen(scenario, server_round, placement.population)
    wave = len(placement.nodes) if placement.pooled else len(partitions)
    expected = EVALUATE_METRICS | (PERSONAL_METRICS if personal else frozenset())
    outcomes: list[ClientOutcome] = []
    sent = received = empty = 0
    for first in range(0, len(partitions), max(wave, 1)):
        batch = partitions[first : first + wave]
        node_of = dict(zip(batch, placement.nodes, strict=False)) if placement.pooled else placement.node_of
        messages = [_message(arrays, config, server_round, p, node_of[p], placement.pooled) for p in batch]
        messages = channel.encode_downlink(messages, scenario, server_round, "evaluate")
        if placement.pooled:  # the client's kept state travels to the node standing in for it
            messages = store.attach(messages, {node_of[p]: p for p in batch})
        replies = exchange(grid, messages, scenario.resources.round_timeout_s, abort)
        sent, received = sent + array_bytes(messages), received + array_bytes(replies)
        partition_of = {node_of[p]: p for p in batch}
        for reply in screen_evaluate(replies, expected).accepted:
            outcome = _outcome(partition_of[reply.metadata.src_node_id], reply, personal)
            if outcome.samples:
                outcomes.append(outcome)
            else:
                empty += 1
    evaluation = ClientEvaluation(outcomes, len(partitions), empty, sent, received)
    if evaluation.missing:
        warn(
            f"round {server_round}: {evaluation.missing} of {evaluation.asked} clients gave no per-client "
            "evaluation (failed, or no reply before resources.round_timeout_s): left out of client_acc_*"
        )
    return evaluation


def _message(
    arrays: ArrayRecord,
    config: Mapping[str, str | bytes],
    server_round: int,
    partition: int,
    node: int,
    pooled: bool,
) -> Message:
    named = {keys.PARTITION_ID: partition} if pooled else {}
    own = ConfigRecord({**dict(config), keys.SERVER_ROUND: server_round, keys.LOCAL_TEST: 1, **named})
    content = RecordDict({keys.ARRAYS: arrays, keys.CONFIG: own})
    return Message(content=content, message_type=MessageType.EVALUATE, dst_node_id=node)


def _outcome(partition: int, reply: Message, personal: bool) -> ClientOutcome:
    metrics = reply.content.metric_records[keys.METRICS]
    return ClientOutcome(
        partition=partition,
        accuracy=keys.number(metrics, keys.EVAL_ACCURACY),
        loss=keys.number(metrics, keys.EVAL_LOSS),
        samples=int(keys.number(metrics, keys.NUM_EXAMPLES)),
        personal_accuracy=keys.number(metrics, keys.PERSONAL_ACCURACY) if personal else None,
        personal_loss=keys.number(metrics, keys.PERSONAL_LOSS) if personal else None,
    )
