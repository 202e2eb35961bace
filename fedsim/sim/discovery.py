"""Which SuperNode holds which partition: one node per partition; every other node is left idle.

Each SuperNode names its partition in its node config (``fedsim client --partition-id K
--num-partitions N``).  The server asks every node online, as nodes come, until each
partition ``0..expected-1`` has one.  A node that is extra (its partition is taken),
from another split (``num-partitions`` other than the run's client count), or stale
(online, but its query fails or gets no reply) gets no work, and a warning says which
and why, rather than failing every run: the run goes on with one node per partition.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from flwr.app import Message, MessageType, RecordDict
from flwr.serverapp import Grid

from fedsim import protocol as keys
from fedsim.sim.exchange import Abort, RunError

POLL_S = 0.1


@dataclass(frozen=True)
class Holding:
    """A node's answer: the partition it holds, of how many."""

    partition: int
    of: int


@dataclass(frozen=True)
class Discovery:
    partitions: dict[int, int]  # node id -> partition id: exactly one node for each partition
    idle: list[str]  # one line per node left idle, saying why


def discover_partitions(grid: Grid, expected: int, timeout: float, abort: Abort) -> Discovery:
    """Ask nodes as they come online until every partition has a node; RunError after ``timeout``.

    ``expected`` is the data's client count (``len(FederatedData.clients)``), which text
    data sets decide themselves (one client per role or file).
    """
    deadline = time.monotonic() + timeout
    waiting: dict[str, int] = {}  # query message id -> node id
    answers: dict[int, Holding | str] = {}  # node id -> its holding, or why it failed
    seen: list[int] = []
    while True:
        new = [n for n in grid.get_node_ids() if n not in seen]
        seen += new
        _ask(grid, new, waiting)
        for reply in grid.pull_messages(list(waiting)):
            answers[waiting.pop(reply.metadata.reply_to_message_id)] = _holding(reply)
        chosen = choose(answers, expected)
        if len(chosen) == expected:
            return Discovery(chosen, idle_lines(seen, answers, chosen, expected))
        failed = [why for why in answers.values() if isinstance(why, str)]
        if failed and not waiting and len(seen) >= expected:  # nothing more to hear: fail as early as before
            raise RunError(f"{len(failed)} clients failed to start: {failed[0]}")
        if abort.is_set():
            raise RunError(abort.reason)
        if time.monotonic() > deadline:
            raise RunError(_missing(seen, answers, chosen, expected))
        abort.wait(POLL_S)


def choose(answers: dict[int, Holding | str], expected: int) -> dict[int, int]:
    """node id -> partition: the first node (by id) answering for each partition of this split."""
    chosen: dict[int, int] = {}
    for node in sorted(answers):
        held = answers[node]
        if isinstance(held, Holding) and held.of == expected and held.partition not in chosen.values():
            chosen[node] = held.partition
    return chosen


def idle_lines(
    seen: list[int], answers: dict[int, Holding | str], chosen: dict[int, int], expected: int
) -> list[str]:
    lines = []
    holder = {partition: node for node, partition in chosen.items()}
    for node in seen:
        held = answers.get(node)
        if node in chosen:
            continue
        if held is None:
            why = "it has not answered yet (still starting, or stale)"
        elif isinstance(held, str):
            why = f"its query failed: {held}"
        elif held.of != expected:
            why = f"it holds partition {held.partition} of {held.of}, but this run has {expected} clients"
        else:
            why = f"partition {held.partition} is already held by node {holder[held.partition]}"
        lines.append(f"node {node} left idle: {why}")
    return lines


def _ask(grid: Grid, nodes: list[int], waiting: dict[str, int]) -> None:
    queries = [Message(RecordDict(), dst_node_id=n, message_type=MessageType.QUERY) for n in nodes]
    for message_id, node in zip(grid.push_messages(queries), nodes, strict=True):
        if message_id:  # None: Flower refused the message; the node stays unasked and idle
            waiting[message_id] = node


def _holding(reply: Message) -> Holding | str:
    if reply.has_error():
        return reply.error.reason or "error without a reason"
    metrics = reply.content.metric_records[keys.METRICS]
    return Holding(
        int(keys.number(metrics, keys.PARTITION_ID)), int(keys.number(metrics, keys.NODE_NUM_PARTITIONS))
    )


def _missing(
    seen: list[int], answers: dict[int, Holding | str], chosen: dict[int, int], expected: int
) -> str:
    if len(seen) < expected:
        return f"only {len(seen)} of the {expected} expected client nodes connected"
    missing = sorted(set(range(expected)) - set(chosen.values()))
    idle = "; ".join(idle_lines(seen, answers, chosen, expected))
    return f"no node holds partitions {missing[:10]} of {expected} ({idle})"
