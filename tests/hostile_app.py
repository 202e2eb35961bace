"""A ClientApp for tests only: the real one, except partition 0 replies NaN weights and
partition 1 a layer of the wrong shape.  ``fedsim launch`` runs it as ``tests.hostile_app:app``
(with the repository on PYTHONPATH) to show the server drops such replies."""

from __future__ import annotations

import numpy as np
from flwr.app import Array, ArrayRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp

import clients.app as honest
from fedsim import protocol as keys

app = ClientApp()
app.evaluate()(honest.evaluate)
app.query()(honest.query)


@app.train()
def train(msg: Message, context: Context) -> Message:
    reply = honest.train(msg, context)
    partition = int(context.node_config[keys.NODE_PARTITION_ID])
    if partition > 1:
        return reply
    arrays = {name: a.numpy() for name, a in reply.content.array_records[keys.ARRAYS].items()}
    if partition == 0:
        arrays = {name: np.full_like(a, np.nan) for name, a in arrays.items()}
    else:
        first = next(iter(arrays))
        arrays[first] = np.zeros((1, 1), dtype=arrays[first].dtype)
    content = RecordDict(
        {
            keys.ARRAYS: ArrayRecord({name: Array(a) for name, a in arrays.items()}),
            keys.METRICS: reply.content.metric_records[keys.METRICS],
        }
    )
    return Message(content, reply_to=msg)
