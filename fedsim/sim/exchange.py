"""Talking to the clients through Flower's Grid: bounded, abortable waits.

Every wait ends after ``resources.round_timeout_s`` or as soon as :class:`Abort` is
set (Ctrl-C, a failed engine), so no round can hang the run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from flwr.app import Message
from flwr.serverapp import Grid

from fedsim import protocol as keys
from fedsim.sim import handover

POLL_S = 0.02  # the longest between pulls for replies; in a simulation a reply wakes it at once
# Clients answer their first message only once started (Ray workers import torch and
# Flower), which can outlast a round timeout set short to simulate dropouts.
MIN_STARTUP_S = 120.0
RESEND_PAUSE_S = 0.5  # before sending a message again to a client whose process is restarting


class RunError(RuntimeError):
    """The run cannot go on (clients failing, none connected); the message says why."""


class Abort(threading.Event):
    """Set from outside the server (Ctrl-C, a failed engine) to end its waits at once."""

    reason = "stopped"

    def stop(self, reason: str) -> None:
        self.reason = reason
        self.set()


def exchange(
    grid: Grid, messages: Iterable[Message], timeout: float, abort: Abort, linger: bool = False
) -> list[Message]:
    """Send, then collect replies until all are in, ``timeout`` passes or ``abort`` is set.

    A message Ray could not hand over because the client's worker process was being
    restarted (after a crash) is sent again after a pause: Flower's Ray backend gives
    such a worker the next message at once, so one crash would otherwise fail every
    message that follows it until the new process is up.

    ``linger``: wait out the whole ``timeout`` even once every reply is in, as a server
    must when a client it sampled never got its message (a simulated dropout): it cannot
    tell that client from a slow one.
    """
    deadline = time.monotonic() + timeout
    waiting: dict[str, Message] = {}  # message id -> message
    again: list[tuple[float, Message, Message]] = []  # (when, message, its error reply) to send again
    replies: list[Message] = []
    _push(grid, list(messages), waiting)
    while (waiting or again) and time.monotonic() < deadline and not abort.is_set():
        now = time.monotonic()
        handover.expect_replies()
        for reply in grid.pull_messages(list(waiting)):
            message = waiting.pop(reply.metadata.reply_to_message_id)
            if not_delivered(reply) and now + RESEND_PAUSE_S < deadline:
                again.append((now + RESEND_PAUSE_S, message, reply))
            else:
                replies.append(reply)
        _push(grid, [m for when, m, _ in again if when <= now], waiting)
        again = [entry for entry in again if entry[0] > now]
        if waiting or again:
            handover.wait_for_reply(POLL_S)  # Ctrl-C and a failed engine: seen within POLL_S
    replies.extend(reply for _, _, reply in again)  # the deadline came first: they count as failed
    if linger and not abort.is_set():
        abort.wait(max(0.0, deadline - time.monotonic()))
    if abort.is_set():
        raise RunError(abort.reason)
    return replies


def not_delivered(reply: Message) -> bool:
    """Ray's error for a task it never ran: the client's process was being restarted."""
    return reply.has_error() and "actor is restarting" in (reply.error.reason or "")


def _push(grid: Grid, messages: list[Message], waiting: dict[str, Message]) -> None:
    # A fresh Message each time: Flower stamps the one it delivered, and refuses it again.
    fresh = [
        Message(
            m.content,
            dst_node_id=m.metadata.dst_node_id,
            message_type=m.metadata.message_type,
            group_id=m.metadata.group_id,
        )
        if m.metadata.message_id
        else m
        for m in messages
    ]
    stored = set(grid.push_messages(fresh))  # a message Flower refuses gets no reply to wait for
    handover.pushed()
    for message, original in zip(fresh, messages, strict=True):
        if message.metadata.message_id in stored:
            waiting[message.metadata.message_id] = original


def array_bytes(messages: Iterable[Message]) -> int:
    """Bytes of the model arrays the messages carry (Flower's ``ArrayRecord.count_bytes``)."""
    return sum(
        record.count_bytes()
        for message in messages
        if not message.has_error()
        for name, record in message.content.array_records.items()
        if not name.startswith(keys.STATE)  # a client's state, stored by the server: not sent in earnest
    )


def startup_timeout(round_timeout: float) -> float:
    """How long the server waits for its clients to connect and answer their first query."""
    return max(round_timeout, MIN_STARTUP_S)


def wait_for_nodes(grid: Grid, expected: int, timeout: float, abort: Abort) -> list[int]:
    """The node ids, once ``expected`` nodes have connected (the simulation registers them at once)."""
    deadline = time.monotonic() + timeout
    while len(nodes := list(grid.get_node_ids())) < expected:
        if time.monotonic() > deadline or abort.is_set():
            raise RunError(f"only {len(nodes)} of the {expected} expected client nodes connected")
        abort.wait(0.5)
    return nodes


def query(grid: Grid, asked: list[Message], timeout: float, abort: Abort, failure: str) -> list[Message]:
    """Send query messages; every node must answer without an error."""
    replies = exchange(grid, asked, timeout, abort)
    errors = [r.error.reason for r in replies if r.has_error()]
    if errors or len(replies) < len(asked):
        raise RunError(
            f"{len(asked) - len(replies) + len(errors)} clients {failure}: "
            f"{errors[0] if errors else 'no reply before resources.round_timeout_s'}"
        )
    return replies
