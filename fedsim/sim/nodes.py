"""Which Ray node trained each client: taken out of the train replies, counted per round.

A Ray-simulated client's train reply names its node (``RAY_NODE``, clients/node.py).  That
record is no part of what a strategy expects: screening would drop a reply carrying it
(fedsim/sim/replies.py) and Flower's strategies would skip the round.  So :func:`take`
removes it from every reply as the replies come in, and the round's row counts the clients
that delivered, per node (``client_nodes``): on a cluster, proof that every node trained.
A SuperNode's reply names no node; its row's ``client_nodes`` stays empty.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from flwr.app import Message

from fedsim import protocol as keys

MAX_NAME = 100  # characters; a longer name is no fedsim client's (Ray's: 8 + 1 + an IP address)


def take(replies: Iterable[Message]) -> dict[int, str]:
    """Remove the node record from each reply; the node each reply names, by its sender.

    A reply's sender (``src_node_id``) is its client's Flower node, one per client of an
    attempt, as the round loop counts them (the cohort engine's split replies too).
    """
    named: dict[int, str] = {}
    for reply in replies:
        if reply.has_error() or keys.RAY_NODE not in reply.content.config_records:
            continue
        record = reply.content.config_records[keys.RAY_NODE]
        del reply.content[keys.RAY_NODE]
        name = record.get(keys.RAY_NODE_NAME)
        if isinstance(name, str) and 0 < len(name) <= MAX_NAME:
            named[reply.metadata.src_node_id] = name
    return named


def count(replies: Iterable[Message], named: Mapping[int, str]) -> dict[str, int]:
    """How many of ``replies`` each node sent (those that named one), by node name."""
    return dict(
        sorted(
            Counter(named[r.metadata.src_node_id] for r in replies if r.metadata.src_node_id in named).items()
        )
    )


def total(counts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """The counts of a round's attempts added up, by node name."""
    summed: Counter[str] = Counter()
    for each in counts:
        summed.update(each)
    return dict(sorted(summed.items()))
