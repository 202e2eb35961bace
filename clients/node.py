"""What a client knows of the Ray node it runs on: its name, which its train replies carry.

A train reply names the node (``RAY_NODE``), so a run's rows show that a cluster's nodes
all trained (fedsim/sim/nodes.py).  On a SuperNode (no Ray) there is no node name.
"""

from __future__ import annotations

import functools
import sys

from flwr.app import ConfigRecord, Context, Message
from flwr.clientapp.typing import ClientAppCallable

from fedsim import protocol as keys


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
