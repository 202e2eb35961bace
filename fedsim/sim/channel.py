"""The server's half of ``[compression]`` (strategies/compression.py): the global model encoded
into the messages it sends, the clients' encoded updates decoded into models before screening.

Both are plain functions of the messages and the scenario, whatever loop calls them (a
synchronous round, fedsim/sim/rounds.py, or an asynchronous one).  Decoding comes first, so
screening (fedsim/sim/replies.py), every strategy and central DP's clipping and noise see
ordinary models; the bytes counted (fedsim/sim/exchange.py ``array_bytes``) are those of the
messages as they travelled, the encoded ones.  The client's half is clients/channel.py.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence

import numpy as np
from flwr.app import ArrayRecord, Message, RecordDict

from fedsim import protocol as keys
from fedsim.scenario.sections import Scenario
from fedsim.scenario.seeding import generator
from strategies import compression


def encode_downlink(
    messages: Sequence[Message], scenario: Scenario, server_round: int, stage: str
) -> list[Message]:
    """The messages with their model (``keys.ARRAYS``) encoded by ``compression.downlink``, in place.

    Each distinct record is encoded once, from the stream ``(seed, "compress", "downlink", round,
    stage)`` (``stage``: "train" or "evaluate"), and messages that shared it share its encoding:
    one broadcast, which the cohort engine sends once per group.
    """
    codec = scenario.compression.downlink
    if codec == "none":
        return list(messages)
    encoded: dict[int, ArrayRecord] = {}  # id of the strategy's record -> its encoding
    for message in messages:
        record = message.content.array_records[keys.ARRAYS]
        if id(record) not in encoded:
            rng = generator(scenario.seed, "compress", "downlink", server_round, stage)
            arrays = compression.encode(keys.to_numpy(record), codec, rng, 0.0)
            encoded[id(record)] = keys.to_record(arrays)
        message.content[keys.ARRAYS] = encoded[id(record)]
    return list(messages)


def decode_replies(
    replies: Iterable[Message], sent: ArrayRecord, model: ArrayRecord, scenario: Scenario
) -> list[Message]:
    """The train replies with each one's encoded update decoded into the model it stands for.

    ``sent``: the model record the train messages carried (encoded by :func:`encode_downlink`,
    or not); ``model``: the global model, whose names, shapes and dtypes the decoded models
    take.  A client's model is the model it received (``sent`` decoded, as the client decoded
    it) plus its decoded update.  Error replies come back as they are; a reply that is not what
    the codec makes (a misbehaving client) comes back with its model record renamed to say why,
    so screening drops it.  The replies given are left unchanged (their bytes are what
    travelled): the others are copies.
    """
    cfg = scenario.compression
    if cfg.uplink == "none":  # clients send their models as they are
        return list(replies)
    original = {name: (tuple(a.shape), np.dtype(a.dtype)) for name, a in model.items()}
    received = keys.to_numpy(sent)
    if cfg.downlink != "none":
        received = compression.decode(received, cfg.downlink, original)
    return [
        reply if reply.has_error() else _decoded(reply, received, cfg.uplink, original) for reply in replies
    ]


def _decoded(
    reply: Message, received: compression.Arrays, codec: compression.Codec, original: compression.Like
) -> Message:
    record = reply.content.array_records.get(keys.ARRAYS)
    if record is None:
        return reply
    content = dict(reply.content.items())
    try:
        update = compression.decode(keys.to_numpy(record), codec, original)
        content[keys.ARRAYS] = keys.to_record(compression.model_of(received, update))
    except Exception as error:  # malformed bytes, names, shapes: NumPy's reader raises several kinds
        # Renamed, so screening drops it, naming why (even a plain model, which would pass it).
        content[f"{keys.ARRAYS} (not {codec}: {error})"] = content.pop(keys.ARRAYS)
    decoded = copy.copy(reply)  # its metadata shared: the same reply, another content
    decoded.content = RecordDict(content)
    return decoded


def residual_like(model: ArrayRecord) -> ArrayRecord:
    """What topk's kept residual looks like: the model's floating arrays (for screening)."""
    return ArrayRecord({name: a for name, a in model.items() if compression.floating(np.dtype(a.dtype))})


def task_bytes(model: ArrayRecord, scenario: Scenario) -> tuple[int, int]:
    """The bytes of one train message's model and of its reply's, encoded as ``[compression]``
    says: the same for every client (each codec's size depends on the shapes alone), so an
    asynchronous schedule knows every task's transfer time before it runs."""
    cfg = scenario.compression
    arrays = keys.to_numpy(model)
    rng = generator(scenario.seed, "compress", "sizes")  # the values drawn do not change a size
    down = keys.to_record(compression.encode(arrays, cfg.downlink, rng, 0.0))
    up = keys.to_record(compression.encode(arrays, cfg.uplink, rng, cfg.fraction or 0.0))
    return down.count_bytes(), up.count_bytes()
