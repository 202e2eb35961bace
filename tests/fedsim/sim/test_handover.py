"""Messages reach the simulated clients, and replies the server, when they exist, not on a poll."""

from __future__ import annotations

import threading
from queue import Queue
from typing import Any

import pytest
from flwr.server.superlink.fleet.vce import vce_api

from fedsim.sim import handover


class LinkState:
    """Flower's link state as the two loops use it: undelivered messages per node, stored replies."""

    def __init__(self) -> None:
        self.undelivered: dict[int, list[str]] = {}
        self.replies: list[str] = []
        self.lock = threading.Lock()

    def get_message_ins(self, node_id: int, limit: int) -> list[str]:
        with self.lock:
            pending = self.undelivered.get(node_id, [])
            taken, self.undelivered[node_id] = pending[:limit], pending[limit:]
            return taken

    def store_message_res(self, message: str) -> None:
        self.replies.append(message)


def _loop(target: Any, *args: Any) -> threading.Event:
    stop = threading.Event()
    threading.Thread(target=target, args=(*args, stop), daemon=True).start()
    return stop


def test_a_pushed_message_is_handed_over_at_once_not_at_the_next_look(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(handover, "LOOK_S", 60.0)  # only a wake-up can hand it over within the test
    state, queue = LinkState(), Queue[str]()
    stop = _loop(handover._add_messages_to_queue, state, queue, {1: 0, 2: 1})
    try:
        with state.lock:
            state.undelivered[2] = ["first", "second"]  # two for one node: one per look, looked at again
        handover.pushed()
        assert [queue.get(timeout=10), queue.get(timeout=10)] == ["first", "second"]
    finally:
        stop.set()
        handover.pushed()


def test_a_stored_reply_wakes_the_server_waiting_for_it() -> None:
    state, queue = LinkState(), Queue[str]()
    stop = _loop(handover._put_message_into_state, state, queue)
    try:
        handover.expect_replies()
        assert not handover._replied.is_set()
        queue.put("reply")
        handover.wait_for_reply(10)
        assert handover._replied.is_set() and state.replies == ["reply"]
    finally:
        stop.set()


def test_install_puts_the_woken_loops_in_flowers_place(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("add_messages_to_queue", "put_message_into_state"):
        monkeypatch.setattr(vce_api, name, getattr(vce_api, name))  # restored after the test
    assert handover.install() and handover.install()  # twice: still the loops it knows
    assert vce_api.add_messages_to_queue is handover._add_messages_to_queue
    assert vce_api.put_message_into_state is handover._put_message_into_state


def test_a_flower_whose_loops_changed_keeps_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    def changed(state: object, queue: object, nodes_mapping: object, f_stop: object, extra: object) -> None:
        """A later Flower's loop with another signature."""

    monkeypatch.setattr(vce_api, "add_messages_to_queue", changed)
    monkeypatch.setattr(vce_api, "put_message_into_state", vce_api.put_message_into_state)
    assert not handover.install()
    assert getattr(vce_api, "add_messages_to_queue") is changed  # noqa: B009 (mypy: not the type it declares)
