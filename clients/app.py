"""The ClientApp: the same code in Ray-simulated clients and on real SuperNodes.

Each handler finds the worker's cached workload for the message's scenario
(clients/workload.py), loads the global model and answers: a train message with one client's
round or a cohort group's (clients/local_round.py), an evaluate message with the model's loss
and accuracy on the client's data, a query with the partition this node holds.
"""

from __future__ import annotations

import sys

from flwr.app import ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from clients import channel, client_state, gpu, local_round, node, privacy, training, workload
from fedsim import protocol as keys
from fedsim.scenario import objects

app = ClientApp()


def _setup(msg: Message, context: Context) -> tuple[workload.Workload, int, ConfigRecord]:
    """The cached workload, with the global model loaded, and this node's partition id."""
    config = msg.content.config_records[keys.CONFIG]
    pickled = config.get(keys.PLUGIN_OBJECTS)
    if isinstance(pickled, bytes) and _in_simulation():  # Python objects given to fedsim.run
        objects.install(pickled)
    node_dir = context.node_config.get(keys.NODE_DATA_DIR)
    data_root = str(node_dir) if node_dir else keys.text(config, keys.DATA_ROOT) or None
    token = config.get(keys.DRIVER_DATA)  # the driver's data, for a Ray node without the root
    data_copy = token if isinstance(token, bytes) and _in_simulation() else None
    allowed = None if _in_simulation() else allowed_plugins(context)  # None: any (a simulation)
    work = workload.load(keys.text(config, keys.SCENARIO), data_root, data_copy, allowed)
    channel.decode_downlink(msg, work.model, work.scenario)  # [compression]: what every reader sees
    work.model.load_state_dict(msg.content.array_records[keys.ARRAYS].to_torch_state_dict())
    named = config.get(keys.PARTITION_ID)  # a pooled node's message names its client
    pid = named if isinstance(named, int) else context.node_config[keys.NODE_PARTITION_ID]
    return work, int(pid), config


def allowed_plugins(context: Context) -> tuple[str, ...]:
    """The module prefixes a SuperNode's operator allowed (none: the built-ins only).  The
    scenario comes from the server: a node imports only what its operator chose to run."""
    listed = str(context.node_config.get(keys.NODE_ALLOW_PLUGINS, ""))
    return tuple(p for p in listed.split(",") if p)


def _in_simulation() -> bool:
    """In a Ray actor of Flower's simulation, not on a SuperNode (whose ClientApp has no Ray)."""
    ray = sys.modules.get("ray")
    return ray is not None and bool(ray.is_initialized())


# Central DP, clipped on the client (Flower's mods); around it, a pooled node's client state
# comes in and goes back (clients/client_state.py); around all, the reply names its Ray node.
@app.train(mods=[node.naming_mod, client_state.state_mod, privacy.clipping_mod])
def train(msg: Message, context: Context) -> Message:
    work, pid, config = _setup(msg, context)
    # The cohort engine sends a group's partition ids: this node trains them all (sim/cohort_engine.py).
    group = config.get(keys.COHORT_PARTITIONS)
    if isinstance(group, list):
        partitions = [int(p) for p in group]
        return gpu.within_share(
            work.share, partitions, lambda: local_round.train_group(msg, work, config, partitions)
        )
    return gpu.within_share(
        work.share, [pid], lambda: local_round.train_client(msg, context, work, pid, config)
    )


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """The global model on this client's local data: its own test samples where the message asks
    (per-client evaluation, with its personal model's too), else its training samples."""
    work, pid, config = _setup(msg, context)
    if config.get(keys.LOCAL_TEST):
        return gpu.within_share(
            work.share, [pid], lambda: local_round.evaluate_own(msg, context, work, pid, config)
        )
    data = work.client(pid)
    loss, accuracy = gpu.within_share(work.share, [pid], lambda: training.evaluate(work.model, data))
    metrics = MetricRecord(
        {keys.NUM_EXAMPLES: float(len(data)), keys.EVAL_LOSS: loss, keys.EVAL_ACCURACY: accuracy}
    )
    return Message(RecordDict({keys.METRICS: metrics}), reply_to=msg)


@app.query()
def query(msg: Message, context: Context) -> Message:
    """Tell the server which partition this node holds, so it can sample reproducibly."""
    node = context.node_config
    metrics = MetricRecord(
        {
            keys.PARTITION_ID: float(node[keys.NODE_PARTITION_ID]),
            keys.NODE_NUM_PARTITIONS: float(node[keys.NODE_NUM_PARTITIONS]),
        }
    )
    return Message(RecordDict({keys.METRICS: metrics}), reply_to=msg)
