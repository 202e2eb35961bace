"""What a client keeps between its rounds: its algorithm's ``state`` (strategies/algorithm.py).

A SuperNode holds one client, and keeps that client's state in its ``Context.state``, which
Flower keeps across a run's rounds.  A simulated node of a pool (strategies/placement.py)
stands in for a different client each round and keeps nothing of its own: the server keeps each
client's state for it (fedsim/sim/client_store.py), the train message brings it in and the reply
takes the new state back.  :func:`state_mod` moves it between the message and the node's
``Context.state`` around the train handler, so the handler reads and writes the one place on
both, and Flower's client-side DP mods (which take messages with the model alone) never see it.

The cohort engine's group message carries each member's state under the member's own record
names (fedsim/sim/cohort_engine.py); clients/local_round.py reads those itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import numpy as np
from flwr.app import ArrayRecord, Context, Message, RecordDict
from flwr.clientapp.typing import ClientAppCallable
from torch import nn

from fedsim import protocol as keys
from strategies.algorithm import Algorithm, Arrays

Records = Callable[[str], ArrayRecord | None]  # a record by name, None if absent


def state_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """On a pooled node, the client's state from the message into the node's state and back into
    the reply; on a SuperNode (its messages name no client) nothing to do."""
    config = msg.content.config_records.get(keys.CONFIG)
    if config is None or keys.PARTITION_ID not in config:
        return call_next(msg, context)
    _take(context.state)  # nothing of the node's last client may stay: it stands in for another now
    carried = {name: r for name, r in msg.content.array_records.items() if name.startswith(keys.STATE)}
    for name, record in carried.items():
        context.state[name] = record
    msg.content = RecordDict({k: v for k, v in msg.content.items() if k not in carried})
    try:
        reply = call_next(msg, context)
    finally:
        kept = _take(context.state)
    if not reply.has_error():
        for name, record in kept.items():
            reply.content[name] = record
    return reply


def _take(state: RecordDict) -> dict[str, ArrayRecord]:
    taken = {name: r for name, r in state.array_records.items() if name.startswith(keys.STATE)}
    for name in taken:
        del state[name]
    return taken


def read(
    found: Records, algorithm: Algorithm, model: nn.Module, x: Mapping[str, np.ndarray]
) -> dict[str, Arrays]:
    """The client's state by name: as kept, or at its first value where none is kept yet."""
    parameters = [name for name, _ in model.named_parameters()]
    state = {}
    for name, spec in algorithm.state.items():
        record = found(keys.state_record(name))
        state[name] = keys.to_numpy(record) if record is not None else spec.first(x, parameters)
    return state


def received(found: Records, algorithm: Algorithm) -> dict[str, Arrays]:
    """The arrays the strategy sent beside the model (the algorithm's ``sends``)."""
    out = {}
    for name in algorithm.sends:
        record = found(name)
        if record is None:
            raise ValueError(f"the train message lacks the algorithm's {name!r} arrays")
        out[name] = keys.to_numpy(record)
    return out


def records(kind: str, given: Mapping[str, Arrays], declared: Iterable[str]) -> dict[str, ArrayRecord]:
    """What ``finish`` gave for ``kind`` ("replies", "state"), as records, if it is what the
    algorithm declares (the server screens each array too; here a mistake says what it is)."""
    if set(given) != set(declared):
        raise ValueError(f"the algorithm's {kind} {sorted(given)} are not the declared {sorted(declared)}")
    return {name: keys.to_record(arrays) for name, arrays in given.items()}


def keep(state: RecordDict, kept: Mapping[str, ArrayRecord]) -> None:
    """Write the client's new state (records by state name) into its node's ``Context.state``."""
    for name, record in kept.items():
        state[keys.state_record(name)] = record
