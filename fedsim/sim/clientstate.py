"""The server's copy of what clients keep between rounds, so a resumed run can hand it back.

SCAFFOLD's clients keep their control variate ``c_i`` in Flower's per-node
``Context.state``.  In simulation that state lives in the engine's process and dies
with it, so a resumed run would restart every client from ``c_i = 0``.  The server
sees each change ``dc_i`` in the replies and keeps ``c_i = sum of dc_i`` per
partition, computed as the client computes the value it keeps (``c_i + dc_i`` in the
same dtype: clients/app.py), so the copy matches bit for bit.  After a resume the
discovery's second query hands each node its partition's copy.  A simulation's pooled
nodes (strategies/placement.py) keep nothing: each train message carries its client's
copy (:meth:`ClientStates.attach`).

Limit: a reply that arrives after ``resources.round_timeout_s`` is not seen; its client
moved on without the server, and after a resume restarts from the server's copy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from flwr.app import Message, MessageType, RecordDict

from fedsim import protocol as keys
from strategies.scaffold import Arrays, to_numpy, to_record


class ClientStates:
    def __init__(self) -> None:
        self.controls: dict[int, Arrays] = {}  # partition id -> c_i
        self.changed: set[int] = set()  # since the last checkpoint

    def observe(self, partition: int, reply: Message) -> None:
        """Follow the client's state through one of its (screened, error-free) train replies."""
        record = reply.content.array_records.get(keys.CONTROL_DELTA)
        if record is None:
            return
        delta = to_numpy(record)
        old = self.controls.get(partition)
        self.controls[partition] = {
            k: (old[k] if old is not None else np.zeros_like(d)) + d for k, d in delta.items()
        }
        self.changed.add(partition)

    def attach(self, messages: Iterable[Message], partition_of: Mapping[int, int]) -> list[Message]:
        """Train messages to pooled nodes, each with its client's state (none before its first reply)."""
        out = []
        for message in messages:
            c_i = self.controls.get(partition_of[message.metadata.dst_node_id])
            if c_i is not None:
                content = {**dict(message.content.items()), keys.CLIENT_CONTROL: to_record(c_i)}
                message.content = RecordDict(content)
            out.append(message)
        return out

    def handback(self, node_of: Mapping[int, int]) -> list[Message]:
        """Query messages that set each node's kept state to the server's copy."""
        return [
            Message(
                RecordDict({keys.CLIENT_CONTROL: to_record(c_i)}),
                dst_node_id=node_of[partition],
                message_type=MessageType.QUERY,
            )
            for partition, c_i in sorted(self.controls.items())
        ]

    # Stateful (fedsim/sim/checkpoint.py), one entry per client, so a checkpoint can
    # rewrite only the clients that changed.
    def state(self) -> dict[str, Any]:
        return {str(p): {keys.CLIENT_CONTROL: c_i} for p, c_i in self.controls.items()}

    def restore(self, state: dict[str, Any]) -> None:
        self.controls = {int(p): dict(s[keys.CLIENT_CONTROL]) for p, s in state.items()}
        self.changed = set()

    def take_changed(self) -> Iterable[str]:
        changed, self.changed = self.changed, set()
        return sorted(map(str, changed))
