"""Every key that travels between the ServerApp and the ClientApp, in one place.

A train or evaluate message carries the global model under ``ARRAYS`` and a
ConfigRecord under ``CONFIG`` holding the whole resolved scenario as TOML (so a
client needs nothing but its data and partition id); replies carry a
MetricRecord under ``METRICS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only annotations: the command line imports this module without Flower or NumPy
    import numpy as np
    from flwr.app import ArrayRecord, ConfigRecord, MetricRecord

# Record names inside a message's RecordDict (Flower's strategies use the same).
ARRAYS = "arrays"
CONFIG = "config"
METRICS = "metrics"

# ConfigRecord keys, server -> client.
SCENARIO = "scenario"  # resolved scenario, TOML text
DATA_ROOT = "data-root"  # where the server found the data (a node's data-dir wins)
# Python objects given to fedsim.run as plug-ins, pickled (fedsim/scenario/plugins.py); simulation only.
PLUGIN_OBJECTS = "plugin-objects"
# On a joined Ray cluster, the driver's data in Ray's object store (fedsim/data/object_store.py): a
# node without the data root trains on this copy instead.  Simulation only; absent when the data
# were generated or Ray is private to the run (one machine, which has the root).
DRIVER_DATA = "driver-data"
SERVER_ROUND = "server-round"  # set by Flower's strategies
# Per client, from the round's plan (strategies/plan.py); absent for a plain client.
LOCAL_EPOCHS = "local-epochs"  # a straggler's epochs, fewer than client.local_epochs
FAULT = "fault"  # an injected fault to act out: "fail" (raise) or "crash" (the process exits)
# A simulated node of a pool stands in for any client (strategies/placement.py): its messages
# name the client (PARTITION_ID) and carry the client's kept state (records named STATE + name).
PARTITION_ID = "partition-id"  # also the query reply's metric: the partition a SuperNode holds
LOCAL_TEST = "local-test"  # an evaluate message asking for the client's own test data (per-client)
# The cohort engine (fedsim/sim/cohort_engine.py): one train message per group of clients, to the
# group's first node, naming the partitions to train; what differs between its clients (their
# state) is under member_record(name, pid), and the reply holds each one's records so too.
COHORT_PARTITIONS = "cohort-partitions"  # list of partition ids
COHORT_EPOCHS = "cohort-epochs"  # each one's local epochs (a straggler's are fewer), in that order
# A group reply also carries one MetricRecord saying how the worker trained the group
# (clients/cohort_group.py); the server logs it and hands it to no strategy, so none of
# these numbers is averaged into the clients' metrics.
COHORT_REPORT = "cohort-report"
REPORT_CLIENTS = "clients"
REPORT_CHUNK = "chunk"  # clients trained at once
REPORT_CHUNKS = "chunks"
REPORT_FIT = "fit"  # clients the worker's memory estimate lets train at once
REPORT_FOOTPRINT = "footprint-bytes"  # one client's estimated memory
REPORT_AVAILABLE = "available-bytes"  # the memory the worker found available to it
REPORT_CAPTURED = "captured"  # 1: every chunk ran the captured step (clients/capture.py)
REPORT_COMPILE_S = "compile-s"  # seconds compiling for this group; 0: compiled before
REPORT_HALVINGS = "halvings"  # out-of-memory retries with half the chunk
REPORT_CACHE_HITS = "compile-cache-hits"  # compiled graphs loaded from the on-disk cache
REPORT_CACHE_MISSES = "compile-cache-misses"  # compiled graphs built (and saved to it)
REPORT_IN_TURN = "in-turn"  # 1: the clients trained one after another (clients/cohort.py: vmap_pays)

# What a client keeps between its rounds (strategies/algorithm.py: an algorithm's ``state``), as
# ArrayRecords named STATE + the state's name: in a SuperNode's Context.state; in simulation in the
# messages of a pooled node, which keeps nothing (clients/client_state.py, fedsim/sim/client_store.py).
STATE = "state:"
# topk compression's error feedback (strategies/compression.py): what the client's last encoded
# update left out, kept as one more state entry (never an algorithm's: strategies/algorithm.py).
COMPRESSION_RESIDUAL = "compression-residual"

# Central DP with client-side clipping (strategies/privacy.py, clients/privacy.py).
DP_CLIENT_CLIPPING = "dp-client-clipping"  # server -> client: "fixed" or "adaptive", the mod to run
CLIPPING_NORM = "clipping_norm"  # server -> client: set by Flower's client-side DP wrappers
NORM_BIT = "norm_bit"  # client -> server: 1 if adaptiveclipping_mod clipped the update (Flower's key)

# A Ray-simulated client's train reply names the Ray node it ran on, in a ConfigRecord of one
# key (clients/node.py); the server takes the record out before screening, so no strategy sees
# it, and counts each round's clients per node (fedsim/sim/nodes.py).  SuperNodes send none.
RAY_NODE = "ray-node"  # the record's name
RAY_NODE_NAME = "name"  # its key: the node id's first 8 hex digits @ the node's IP address

# MetricRecord keys, client -> server.
NUM_EXAMPLES = "num-examples"  # Flower's strategies weight by this
TRAIN_LOSS = "train_loss"
EVAL_LOSS = "loss"
EVAL_ACCURACY = "accuracy"
# A per-client evaluation's reply (fedsim/sim/client_eval.py): the client's own model on the same
# samples, under a personalization algorithm.
PERSONAL_LOSS = "personal_loss"
PERSONAL_ACCURACY = "personal_accuracy"

# Error replies carry only a reason text: a client that outgrew its GPU share says this
# phrase (clients/gpu.py), and the server counts it as out of memory (fedsim/sim/failures.py).
GPU_SHARE_EXCEEDED = "needed more than its GPU share"

# Node config keys (set per SuperNode; Flower's simulation sets the first two).
NODE_PARTITION_ID = "partition-id"
NODE_NUM_PARTITIONS = "num-partitions"
NODE_DATA_DIR = "data-dir"
NODE_ALLOW_PLUGINS = "allow-plugins"  # module prefixes, comma-separated (fedsim client --allow-plugin)


def member_record(name: str, partition_id: int) -> str:
    """The name of a group message's or reply's record ``name`` (ARRAYS, METRICS, a client's state)
    for one of its clients (an algorithm's names hold no '@': strategies/algorithm.py)."""
    return f"{name}@{partition_id}"


def member_of(record: str) -> tuple[str, int] | None:
    """``(name, partition id)`` of a :func:`member_record` name; None for any other name."""
    name, at, pid = record.rpartition("@")
    return (name, int(pid)) if at and pid.isdigit() else None


def state_record(name: str) -> str:
    """The record holding the client state ``name`` (in a message, a reply or a Context.state)."""
    return STATE + name


def to_numpy(record: ArrayRecord) -> dict[str, np.ndarray]:
    """An ArrayRecord's arrays by name, as NumPy arrays."""
    return {k: array.numpy() for k, array in record.items()}


def to_record(arrays: Mapping[str, np.ndarray]) -> ArrayRecord:
    """Named NumPy arrays as an ArrayRecord."""
    import numpy as np
    from flwr.app import Array, ArrayRecord

    return ArrayRecord({k: Array(np.ascontiguousarray(v)) for k, v in arrays.items()})


def number(record: ConfigRecord | MetricRecord, key: str, default: float | None = None) -> float:
    """A scalar from a record as float; records are typed as unions of many value kinds."""
    value = record.get(key, default)
    if not isinstance(value, int | float):
        raise TypeError(f"record key {key!r}: expected a number, got {value!r}")
    return float(value)


def text(record: ConfigRecord, key: str, default: str = "") -> str:
    value = record.get(key, default)
    if not isinstance(value, str):
        raise TypeError(f"record key {key!r}: expected a string, got {value!r}")
    return value
