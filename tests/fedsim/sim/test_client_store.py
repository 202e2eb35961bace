"""The server's store of the clients' states: RAM up to a budget, the rest in the checkpoint's files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from flwr.app import ConfigRecord, Message, MessageType, RecordDict

from fedsim import protocol as keys
from fedsim.sim.client_store import ClientStore, State


def state(value: float, size: int = 2) -> State:
    return {"c_i": {"w": np.full(size, value, np.float32), "b": np.array([value], np.float32)}}


def same(a: State | None, b: State) -> bool:
    return (
        a is not None
        and list(a) == list(b)
        and all(list(a[n]) == list(b[n]) and all(np.array_equal(a[n][k], b[n][k]) for k in b[n]) for n in b)
    )


def test_a_round_s_changes_go_to_one_file_and_a_file_goes_when_no_latest_state_is_in_it(
    tmp_path: Path,
) -> None:
    store = ClientStore(tmp_path)
    store.put(0, state(1.0))
    store.put(1, state(2.0))
    assert list(store.commit(1)) == ["r000001.npz"]
    store.put(0, state(3.0))  # client 1's latest is still in round 1's file
    assert sorted(store.commit(2)) == ["r000001.npz", "r000002.npz"]
    store.put(1, state(4.0))
    assert list(store.commit(3)) == ["r000002.npz", "r000003.npz"]  # round 1's holds nothing latest
    assert store.commit(4) == store.files  # nothing changed: no file, the same references


def test_states_past_the_ram_budget_leave_ram_and_come_back_from_disk(tmp_path: Path) -> None:
    one = 3 * 4  # bytes of one client's state
    store = ClientStore(tmp_path, ram_bytes=2 * one)
    for p in range(5):
        store.put(p, state(float(p)))
    assert store.resident_bytes == 5 * one  # a round's changes stay until they are on disk
    store.commit(1)
    assert store.resident_bytes <= 2 * one and list(store.resident) == [3, 4]  # the most recent stay
    assert same(store.get(0), state(0.0))  # read back from round 1's file
    assert list(store.resident)[-1] == 0


def test_a_restored_store_finds_each_clients_latest_state_and_checks_each_file(tmp_path: Path) -> None:
    store = ClientStore(tmp_path)
    store.put(0, state(1.0))
    store.put(1, state(2.0))
    store.commit(1)
    store.put(0, state(3.0))
    files = store.commit(2)
    restored = ClientStore(tmp_path)
    restored.restore(files)
    assert same(restored.get(0), state(3.0)) and same(restored.get(1), state(2.0))
    assert restored.get(2) is None and len(restored) == 2
    (tmp_path / "r000002.npz").write_bytes(b"changed")
    with pytest.raises(ValueError, match=r"r000002\.npz: content does not match its checksum"):
        ClientStore(tmp_path).restore(files)


def test_a_hundred_thousand_clients_with_a_small_state_stay_within_the_ram_budget(tmp_path: Path) -> None:
    """10 rounds of 10,000 new clients each (8 floats of state apiece), a budget of a tenth: RAM
    holds at most the budget once a round is on disk, every state comes back exactly, and a
    resumed store finds each one."""
    budget = 10_000 * 8 * 4 // 10
    store = ClientStore(tmp_path, ram_bytes=budget)
    for server_round in range(10):
        for p in range(server_round * 10_000, (server_round + 1) * 10_000):
            store.put(p, {"g": {"w": np.full(8, p, np.float32)}})
        files = store.commit(server_round + 1)
        assert store.resident_bytes <= budget
    assert len(store) == 100_000 and len(files) == 10
    restored = ClientStore(tmp_path, ram_bytes=budget)
    restored.restore(files)
    for p in (0, 9_999, 54_321, 99_999):
        got = restored.get(p)
        assert got is not None and np.array_equal(got["g"]["w"], np.full(8, p, np.float32))
    assert restored.resident_bytes <= budget + 4 * 8 * 4


def message(node: int) -> Message:
    content = RecordDict({keys.CONFIG: ConfigRecord({keys.PARTITION_ID: node})})
    return Message(content, dst_node_id=node, message_type=MessageType.TRAIN)


@pytest.mark.usefixtures("task_identity")
def test_a_message_carries_its_clients_state_and_the_reply_gives_the_new_one_back(tmp_path: Path) -> None:
    store = ClientStore(tmp_path)
    store.put(7, state(5.0))
    carried, fresh = store.attach([message(1), message(2)], {1: 7, 2: 8})
    assert set(carried.content.array_records) == {keys.state_record("c_i")}
    assert not fresh.content.array_records  # client 8 has none yet
    reply = Message(RecordDict({**dict(carried.content.items())}), reply_to=carried)
    taken = store.take(reply)
    assert same(taken, state(5.0)) and not reply.content.array_records  # out of the strategy's sight
    assert store.take(reply) is None
