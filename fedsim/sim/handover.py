"""Messages handed to the simulated clients, and their replies back, as soon as they exist.

Flower's simulation runtime (``flwr/server/superlink/fleet/vce/vce_api.py``) moves the
messages a ServerApp pushed from its link state to the Ray workers in a loop that looks
every 0.1 s (``add_messages_to_queue``): every round waited on average 50 ms, up to 100 ms,
before a client saw its message.  On the 2NN, whose round trains in about 0.1 s, that was
half the round (benchmarks/README.md, "Where a 2NN round's time goes").  And the server only
learns of a reply when it next pulls (fedsim/sim/exchange.py).

:func:`install` swaps in the same two loops, woken by events: :func:`pushed` (the server
pushed messages) wakes the hand-over at once, and every reply stored sets the event
:func:`wait_for_reply` waits on.  Both keep a bound (``LOOK_S``, the caller's timeout), so a
message pushed by other code, or a missed wake-up, costs what Flower's loop costs, never more.
If this Flower has no such loops (another version), :func:`install` leaves it as it is.
"""

from __future__ import annotations

import inspect
import logging
import threading
from queue import Empty, Queue
from typing import Any

log = logging.getLogger(__name__)

LOOK_S = 0.1  # Flower's own interval: the longest a message can wait without a wake-up

_pushed = threading.Event()
_replied = threading.Event()


def pushed() -> None:
    """The server pushed messages: hand them over now."""
    _pushed.set()


def expect_replies() -> None:
    """Forget replies already signalled; call before looking for replies, then :func:`wait_for_reply`."""
    _replied.clear()


def wait_for_reply(timeout: float) -> None:
    """Until a reply is stored after the last :func:`expect_replies`, or ``timeout`` seconds."""
    _replied.wait(timeout)


def _add_messages_to_queue(
    state: Any, queue: Queue[Any], nodes_mapping: dict[int, int], f_stop: threading.Event
) -> None:
    """Flower's loop (a node's undelivered messages, one per look), woken by :func:`pushed`."""
    while not f_stop.is_set():
        _pushed.clear()  # before looking: a push from here on wakes the next look
        moved = False
        for node_id in nodes_mapping:
            for message in state.get_message_ins(node_id=node_id, limit=1):
                queue.put(message)
                moved = True
        if not moved:  # a node may hold more than one: look again at once while any moved
            _pushed.wait(LOOK_S)


def _put_message_into_state(state: Any, queue: Queue[Any], f_stop: threading.Event) -> None:
    """Flower's loop storing the workers' replies, and saying so."""
    while not f_stop.is_set():
        try:
            reply = queue.get(timeout=1.0)
        except Empty:
            continue
        state.store_message_res(reply)
        _replied.set()


def install() -> bool:
    """Put the woken loops in place of Flower's; False (and Flower's polling) if its loops changed."""
    from flwr.server.superlink.fleet.vce import vce_api

    expected = {
        "add_messages_to_queue": ["state", "queue", "nodes_mapping", "f_stop"],
        "put_message_into_state": ["state", "queue", "f_stop"],
    }
    theirs = {name: getattr(vce_api, name, None) for name in expected}
    if any(f is None or list(inspect.signature(f).parameters) != expected[n] for n, f in theirs.items()):
        log.debug("Flower's simulation loops are not the ones fedsim knows; its 0.1 s polling stays")
        return False
    vce_api.add_messages_to_queue = _add_messages_to_queue
    vce_api.put_message_into_state = _put_message_into_state
    return True
