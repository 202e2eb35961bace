"""SCAFFOLD's client side (Karimireddy et al. 2020, option II): the server's ``c`` and the client's ``c_i``.

``c_i`` outlives a message: a SuperNode keeps it in its ``Context.state``; a simulated
node of a pool stands in for a different client each round, so the message carries its
client's ``c_i`` (the server's copy, fedsim/sim/clientstate.py) and the reply's change is all
that is kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from flwr.app import ArrayRecord, Context, Message, RecordDict
from torch import nn

from fedsim import protocol as keys
from strategies import scaffold


def kept_state(msg: Message, context: Context) -> RecordDict:
    """Where the client's state between rounds lives: its node's, or the message's copy (a pool)."""
    if keys.PARTITION_ID not in msg.content.config_records[keys.CONFIG]:
        return context.state
    carried = msg.content.array_records
    return RecordDict({name: carried[name] for name in keys.CLIENT_STATE if name in carried})


@dataclass(frozen=True)
class Control:
    """SCAFFOLD's client side: the server's ``c`` and this node's ``c_i``."""

    c: dict[str, np.ndarray]
    c_i: dict[str, np.ndarray]  # one per trainable parameter

    @staticmethod
    def received(msg: Message, state: RecordDict, model: nn.Module) -> Control | None:
        """None unless the strategy is SCAFFOLD; ``c_i`` is zero until the client's first reply."""
        c = msg.content.array_records.get(keys.CONTROL)
        if c is None:
            return None
        kept = state.array_records.get(keys.CLIENT_CONTROL)
        if kept is not None:
            return Control(scaffold.to_numpy(c), scaffold.to_numpy(kept))
        zeros = {name: np.zeros(tuple(p.shape), dtype=np.float32) for name, p in model.named_parameters()}
        return Control(scaffold.to_numpy(c), zeros)

    def correction(self, model: nn.Module, device: torch.device) -> list[torch.Tensor]:
        """``c - c_i`` for each parameter, in ``model.parameters()`` order."""
        return [torch.from_numpy(self.c[n] - self.c_i[n]).to(device) for n, _ in model.named_parameters()]

    def update(
        self, state: RecordDict, x: dict[str, np.ndarray], y: dict[str, np.ndarray], steps: int, lr: float
    ) -> ArrayRecord:
        """Keep the new ``c_i`` in the client's ``state``; return its change for the server.

        The kept value is ``c_i + delta``, not option II's ``c_i+`` itself: the two differ in
        the last bits, and this one the server can repeat exactly from the change it receives
        (its copy hands a resumed run's clients their state back, fedsim/sim/clientstate.py).
        """
        _, delta = scaffold.client_control_update(self.c_i, self.c, x, y, steps, lr)
        kept = {k: self.c_i[k] + delta[k] for k in self.c_i}
        state[keys.CLIENT_CONTROL] = scaffold.to_record(kept)
        return scaffold.to_record(delta)
