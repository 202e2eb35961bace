"""The cohort engine's server side: one train message per group of clients, one reply per client.

With ``[resources] engine = "cohort"`` the strategy still configures one train message
per sampled client.  The round loop then cuts the sample (in partition order) into
groups of ``resources.cohort_size`` (default: groups of similar length that keep every client
actor busy, :func:`balanced`) and sends each group one message, to its first client's node,
with the group's partition ids in the config, what its clients' messages share once (the model,
an algorithm's arrays sent to all) and what differs per client (each one's state) under the
client's own record names.  That node's ClientApp trains the group together (clients/cohort.py)
and answers with each client's records under its own names.  :func:`split` turns that answer
back into one reply per client, as if each client's node had answered its own message,
so screening, the strategies (FedAvg, FedProx, the robust ones), server-side DP and
the records see exactly what the per-client engine gives them.  A group's error, or no
answer, counts for each of its clients.

What the cohort path cannot do the same way makes the run train client by client,
with one line saying why (fedsim/sim/cohort_choice.py).

Each group reply also says how the worker trained the group (``COHORT_REPORT``: chunks that
fit its memory, graph capture, compile time, clients/cohort_group.py).  :func:`split` logs
it on the ``fedsim`` logger, which the run's console or log shows: when it first appears or
changes in a run, whenever the worker compiled, and as a warning when it ran out of memory.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from fedsim import protocol as keys
from fedsim.scenario.sections import ClientConfig


@dataclass(frozen=True)
class Group:
    message: Message  # the one train message sent, to the first member's node
    members: tuple[Message, ...]  # the strategy's messages, one per client, in partition order
    partitions: tuple[int, ...]


@dataclass(frozen=True)
class Balance:
    """Without ``resources.cohort_size``: groups that keep every client actor busy (:func:`balanced`)."""

    workers: int  # Ray's client actors
    examples: Sequence[int] | np.ndarray  # each partition's training examples
    client: ClientConfig  # its batch size; each client's epochs come with its message


def balanced(steps: Sequence[int], workers: int) -> list[list[int]]:
    """Clients (indices into ``steps``) cut into groups of similar length.

    A group takes as many steps as its longest client (the others are masked, yet
    computed), so its cost is its size times that.  Longest first, each group takes
    clients while its cost stays within a worker's fair share of the round (or the
    longest client's steps, if more); Flower's actor pool hands the groups to actors
    as they free up, the longest first.  Each group lists its clients in index order.
    """
    order = sorted(range(len(steps)), key=lambda i: (-steps[i], i))
    if not order:
        return []
    budget = max(steps[order[0]], -(-sum(steps) // workers))
    groups: list[list[int]] = [[]]
    for i in order:
        if groups[-1] and (len(groups[-1]) + 1) * steps[groups[-1][0]] > budget:
            groups.append([])
        groups[-1].append(i)
    return [sorted(g) for g in groups]


def group(
    messages: Iterable[Message],
    partition_of: Mapping[int, int],
    size: int | None,
    epochs: int,
    balance: Balance | None = None,
) -> list[Group]:
    """Cut the per-client train messages into groups of ``size`` in partition order; with
    ``size`` None, into ``balance``'s groups (None too: one group).

    The strategy gives every client the same content but for a straggler's fewer local
    epochs (strategies/plan.py); the group message lists each member's (``epochs``: the
    scenario's, where a member's config names none).
    """
    ordered = sorted(messages, key=lambda m: partition_of[m.metadata.dst_node_id])
    partitions = [partition_of[m.metadata.dst_node_id] for m in ordered]
    own = [
        int(keys.number(m.content.config_records[keys.CONFIG], keys.LOCAL_EPOCHS, epochs)) for m in ordered
    ]
    if size is not None:
        cuts = [list(range(start, min(start + size, len(ordered)))) for start in range(0, len(ordered), size)]
    elif balance is not None:
        steps = [
            balance.client.local_steps(balance.examples[p], e) for p, e in zip(partitions, own, strict=True)
        ]
        cuts = balanced(steps, balance.workers)
    else:
        cuts = [list(range(len(ordered)))] if ordered else []
    return [
        Group(
            _group_message(
                [ordered[i] for i in cut], tuple(partitions[i] for i in cut), [own[i] for i in cut]
            ),
            tuple(ordered[i] for i in cut),
            tuple(partitions[i] for i in cut),
        )
        for cut in cuts
    ]


def _group_message(members: list[Message], partitions: tuple[int, ...], epochs: list[int]) -> Message:
    """One message for the group: the first member's config, each record that every member's
    message holds alike (as a strategy shares them) once, the others per member."""
    first = members[0]
    config = {**first.content.config_records[keys.CONFIG]}
    config.pop(keys.LOCAL_EPOCHS, None)  # the first member's; each member's is in COHORT_EPOCHS
    config.pop(keys.PARTITION_ID, None)  # the first member's; the group's are in COHORT_PARTITIONS
    config.update({keys.COHORT_PARTITIONS: list(partitions), keys.COHORT_EPOCHS: epochs})
    content = RecordDict({**dict(first.content.items()), keys.CONFIG: ConfigRecord(config)})
    names = {name for m in members for name in m.content.array_records}
    for name in names:
        if all(
            _same(m.content.array_records.get(name), first.content.array_records.get(name)) for m in members
        ):
            continue  # shared
        if name == keys.ARRAYS:
            raise ValueError("the cohort engine sends one model to a group; the strategy sent several")
        content.pop(name, None)
        for member, pid in zip(members, partitions, strict=True):
            if (record := member.content.array_records.get(name)) is not None:
                content[keys.member_record(name, pid)] = record
    return Message(
        content,
        dst_node_id=first.metadata.dst_node_id,
        message_type=first.metadata.message_type,
        group_id=first.metadata.group_id,
    )


def _same(a: ArrayRecord | None, b: ArrayRecord | None) -> bool:
    """The same record (as a strategy shares one), or one of the same arrays."""
    if a is b:
        return True
    if a is None or b is None or list(a) != list(b):
        return False
    return all(a[k].shape == b[k].shape and a[k].dtype == b[k].dtype and a[k].data == b[k].data for k in a)


def split(replies: Iterable[Message], groups: list[Group]) -> list[Message]:
    """One reply per client of every group that answered, in partition order."""
    by_node = {g.message.metadata.dst_node_id: g for g in groups}
    out: list[Message] = []
    for reply in replies:
        g = by_node[reply.metadata.src_node_id]
        if not reply.has_error() and (report := reply.content.metric_records.get(keys.COHORT_REPORT)):
            _tell(reply.metadata.run_id, report)
        for member, pid in zip(g.members, g.partitions, strict=True):
            out.append(_member_reply(reply, member, pid))
    return out


def _member_reply(reply: Message, member: Message, pid: int) -> Message:
    """The reply ``member``'s own node would have sent: its records under the plain names (a
    missing one leaves the reply malformed: screening drops it)."""
    if reply.has_error():
        return Message(reply.error, reply_to=member)
    content = reply.content
    own = RecordDict()
    for name, record in content.items():
        if (named := keys.member_of(name)) is not None and named[1] == pid:
            own[named[0]] = record
    if (node := content.config_records.get(keys.RAY_NODE)) is not None:  # the worker's, for each member
        own[keys.RAY_NODE] = node
    return Message(own, reply_to=member)


log = logging.getLogger("fedsim")
_SAID: set[tuple[int, ...]] = set()  # (run id, chunk if split else 0, captured, in turn) already logged


def _tell(run_id: int, report: MetricRecord) -> None:
    if not all(isinstance(v, int | float) for v in report.values()):
        return  # not our worker's report: nothing to say
    n = {key: float(value) for key, value in report.items()}  # type: ignore[arg-type]
    halvings = int(n.get(keys.REPORT_HALVINGS, 0))
    if halvings:
        log.warning(
            "cohort engine: a worker ran out of memory and halved its chunk %d time(s); it trains "
            "%d clients at a time from now on (the same results: clients train independently)",
            halvings,
            int(n.get(keys.REPORT_CHUNK, 0)),
        )
    # Said once per run, and again when memory splits a group into another chunk size: groups
    # of every size that fit whole would otherwise print a line each.
    split = int(n.get(keys.REPORT_CHUNK, 0)) if n.get(keys.REPORT_CHUNKS, 1) > 1 else 0
    said = (run_id, split, int(n.get(keys.REPORT_CAPTURED, 0)), int(n.get(keys.REPORT_IN_TURN, 0)))
    if said not in _SAID or n.get(keys.REPORT_COMPILE_S, 0) > 0:
        _SAID.add(said)
        log.info("%s", report_line(n))


def report_line(n: Mapping[str, float]) -> str:
    """One group report as the log says it."""

    def count(key: str) -> int:
        return int(n.get(key, 0))

    chunks = count(keys.REPORT_CHUNKS)
    if count(keys.REPORT_IN_TURN):
        line = (
            f"cohort engine: a worker trained {count(keys.REPORT_CLIENTS)} clients one after another "
            "in one message (vmap makes convolutions grouped ones, slower on a CPU)"
        )
    else:
        line = (
            f"cohort engine: a worker trained {count(keys.REPORT_CLIENTS)} clients in {chunks} "
            f"chunk{'s' * (chunks != 1)} of {count(keys.REPORT_CHUNK)} (memory: "
            f"{n.get(keys.REPORT_AVAILABLE, 0) / 2**20:,.0f} MB available to it, "
            f"{n.get(keys.REPORT_FOOTPRINT, 0) / 2**20:,.1f} MB per client, "
            f"{count(keys.REPORT_FIT)} fit at once)"
        )
    if not count(keys.REPORT_CAPTURED):
        return f"{line}; eager steps"
    compile_s = n.get(keys.REPORT_COMPILE_S, 0)
    if not compile_s:
        return f"{line}; captured step"
    cache = "from the on-disk cache" if count(keys.REPORT_CACHE_HITS) else "cold, kept on disk for later runs"
    if count(keys.REPORT_CACHE_HITS) and count(keys.REPORT_CACHE_MISSES):
        cache = "partly from the on-disk cache"
    return f"{line}; captured step, compiled in {compile_s:.1f} s ({cache})"
