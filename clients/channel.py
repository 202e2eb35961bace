"""The client's half of ``[compression]`` (strategies/compression.py): the global model decoded
as it arrives, the update encoded as it leaves.

Encoding is the last step before the reply: after an algorithm's finish, an attack and local
DP's noise (post-processing, which leaves the guarantee as it was).  The uplink is the update
``released - received``; topk's error-feedback residual is one more kept state entry
(``keys.COMPRESSION_RESIDUAL``), so it stays where an algorithm's state stays: a SuperNode's
``Context.state``, or the server's store for a pooled node's client (clients/client_state.py).
The server's half is fedsim/sim/channel.py.
"""

from __future__ import annotations

import torch
from flwr.app import ArrayRecord, Message, RecordDict

from clients.client_state import Records
from fedsim import protocol as keys
from fedsim.scenario.sections import Scenario
from fedsim.scenario.seeding import generator
from strategies import compression
from strategies.algorithm import Arrays


def decode_downlink(msg: Message, model: torch.nn.Module, scenario: Scenario) -> None:
    """Replace the message's encoded model with the model it stands for (in ``model``'s shapes
    and dtypes), so every reader of the message sees an ordinary model."""
    codec = scenario.compression.downlink
    if codec == "none":
        return
    original = {
        name: (tuple(t.shape), torch.empty(0, dtype=t.dtype).numpy().dtype)
        for name, t in model.state_dict().items()
    }
    encoded = keys.to_numpy(msg.content.array_records[keys.ARRAYS])
    decoded = keys.to_record(compression.decode(encoded, codec, original))
    msg.content = RecordDict({**dict(msg.content.items()), keys.ARRAYS: decoded})  # its records left as sent


def encode_uplink(
    received: Arrays, released: Arrays, scenario: Scenario, server_round: int, pid: int, kept: Records
) -> tuple[ArrayRecord, dict[str, ArrayRecord]]:
    """The reply's model record, and the client's new kept state of compression (by state name:
    topk's residual; none for the other codecs).  ``kept`` finds the residual kept so far."""
    cfg = scenario.compression
    if cfg.uplink == "none":
        return keys.to_record(released), {}
    rng = generator(scenario.seed, "compress", "uplink", server_round, pid)
    update = compression.update_of(received, released)
    fraction = cfg.fraction or 0.0
    if cfg.uplink != "topk":
        return keys.to_record(compression.encode(update, cfg.uplink, rng, fraction)), {}
    record = kept(keys.state_record(keys.COMPRESSION_RESIDUAL))
    residual = keys.to_numpy(record) if record is not None else compression.residual_first(update)
    encoded, left = compression.with_feedback(update, residual, "topk", rng, fraction)
    return keys.to_record(encoded), {keys.COMPRESSION_RESIDUAL: keys.to_record(left)}
