"""What a client knows of the Ray node it runs on: its name, and where its data come from.

A train reply names the node (``RAY_NODE``), so a run's rows show that a cluster's nodes
all trained (fedsim/sim/nodes.py).  A node without the data root the driver found takes
the driver's copy from Ray's object store (fedsim/data/object_store.py) where the driver put
one, and otherwise fails its clients with one line naming the node and the path.
On a SuperNode (no Ray) there is no node name and no driver's copy: the data root is the node's.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

from flwr.app import ConfigRecord, Context, Message
from flwr.clientapp.typing import ClientAppCallable

from fedsim import protocol as keys
from fedsim.data import FederatedData, load_federated, object_store
from fedsim.scenario.sections import Scenario


def name() -> str | None:
    """``<node id's first 8 hex digits>@<IP>`` in a Ray worker, else None.

    The IP tells machines apart, the id nodes on one machine (``ray start`` twice on one host).
    """
    ray = sys.modules.get("ray")  # imported by Flower's Ray backend in its actors; not needed here
    if ray is None or not ray.is_initialized():
        return None
    return _ray_name()


@functools.cache
def _ray_name() -> str:
    import ray

    node_id: str = ray.get_runtime_context().get_node_id()
    return f"{node_id[:8]}@{ray.util.get_node_ip_address()}"


def naming_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """A Flower mod: the reply, naming this Ray node (outside Ray: as it is)."""
    reply = call_next(msg, context)
    here = name()
    if here is not None and not reply.has_error():
        reply.content[keys.RAY_NODE] = ConfigRecord({keys.RAY_NODE_NAME: here})
    return reply


def load_data(scenario: Scenario, root: Path | None, token: bytes | None) -> FederatedData:
    """The scenario's data from ``root`` on this node, else from the driver's copy ``token``."""
    if token is not None and root is not None and not root.is_dir():
        return object_store.fetch(token)
    try:
        return load_federated(scenario.data, scenario.seed, root, scenario.python_path)
    except FileNotFoundError as error:
        here = name()
        if root is None or here is None:  # generated data, or a SuperNode's own root: the loader's words
            raise
        if token is None:
            raise FileNotFoundError(
                f"Ray node {here}: {_missing(error)} (data root {root}), and the driver put no copy "
                "of its data"
            ) from None
        return object_store.fetch(token)


def _missing(error: FileNotFoundError) -> str:
    return f"{error.filename} is missing" if error.filename is not None else str(error)
