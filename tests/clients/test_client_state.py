"""Where a client's state lives: a SuperNode's Context.state, or a pooled node's messages.

The algorithm is tests/stateful.py's (a kept sum of model changes and a round count).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict

from clients import app, client_state, workload
from fedsim import protocol as keys
from fedsim.sim.client_store import ClientStore
from tests import stateful
from tests.clients.test_app import initial_model, message, node, reply_model, scenario_toml

pytestmark = pytest.mark.usefixtures("task_identity")

TALLY, ROUNDS = keys.state_record(stateful.TALLY), keys.state_record(stateful.ROUNDS)


def request(x: dict[str, np.ndarray], server_round: int, partition: int | None = None) -> Message:
    """A train message of the test algorithm; naming a ``partition``: as to a pooled node."""
    ones = {k: np.ones_like(x[k]) for k in x}
    named = {} if partition is None else {keys.PARTITION_ID: partition}
    return message(scenario_toml("tests.stateful:Tally"), x, server_round, {stateful.SCALE: ones}, named)


def rounds(record: ArrayRecord) -> float:
    return float(keys.to_numpy(record)["n"][0])


def test_a_supernode_keeps_its_clients_state_across_rounds() -> None:
    context, x = node(2), initial_model()
    first = app.train(request(x, 1), context)
    assert rounds(context.state.array_records[ROUNDS]) == 1.0
    tally = keys.to_numpy(context.state.array_records[TALLY])
    y = reply_model(first)
    assert all(np.array_equal(tally[k], y[k] - x[k]) for k in tally)  # the first change, kept
    second = app.train(request(y, 2), context)
    assert rounds(context.state.array_records[ROUNDS]) == 2.0  # round 2 started from the kept state
    assert second.content.metric_records[keys.METRICS][stateful.ROUNDS] == 2.0
    assert not any(name.startswith(keys.STATE) for name in second.content.array_records)  # none sent


def test_a_pooled_nodes_state_comes_with_the_message_and_leaves_with_the_reply() -> None:
    context, x = node(0), initial_model()
    carried = request(x, 2, partition=3)
    carried.content[ROUNDS] = keys.to_record({"n": np.array([4.0], np.float32)})
    carried.content[TALLY] = keys.to_record({k: np.zeros_like(x[k]) for k in x})
    reply = client_state.state_mod(carried, context, app.train)
    assert rounds(reply.content.array_records[ROUNDS]) == 5.0  # it trained from the carried state
    assert TALLY in reply.content.array_records
    assert not context.state.array_records  # and the node kept nothing of it


def test_a_pooled_node_keeps_nothing_of_its_last_client_even_when_the_handler_fails() -> None:
    context, x = node(0), initial_model()
    context.state[ROUNDS] = keys.to_record({"n": np.array([9.0], np.float32)})  # a stale client's
    reply = client_state.state_mod(request(x, 1, partition=3), context, app.train)
    assert rounds(reply.content.array_records[ROUNDS]) == 1.0  # its own first round, not the stale 10

    def failing(msg: Message, ctx: Context) -> Message:
        ctx.state[TALLY] = ArrayRecord()
        raise RuntimeError("the update raised")

    with pytest.raises(RuntimeError):
        client_state.state_mod(request(x, 1, partition=3), context, failing)
    assert not context.state.array_records


def test_one_pooled_node_standing_in_for_two_clients_trains_each_as_its_own_node_would(
    tmp_path: Path,
) -> None:
    x = initial_model()
    own = {2: node(2), 4: node(4)}  # each client on a node of its own
    shared = node(0)  # one pooled node, its messages naming the client, the server's store carrying the state
    store = ClientStore(tmp_path)
    models = {2: dict(x), 4: dict(x)}
    for server_round in (1, 2, 3):
        for partition in (2, 4):
            (carried,) = store.attach([request(models[partition], server_round, partition)], {1: partition})
            pooled = client_state.state_mod(carried, shared, app.train)
            state = store.take(pooled)
            assert state is not None
            store.put(partition, state)
            alone = app.train(request(models[partition], server_round), own[partition])
            assert all(np.array_equal(reply_model(pooled)[k], reply_model(alone)[k]) for k in x)
            models[partition] = reply_model(alone)
        store.commit(server_round)
    for partition in (2, 4):
        kept = own[partition].state.array_records
        ours = store.get(partition)
        assert ours is not None
        for name in (stateful.TALLY, stateful.ROUNDS):
            theirs = keys.to_numpy(kept[keys.state_record(name)])
            assert list(ours[name]) == list(theirs)
            assert all(np.array_equal(ours[name][k], theirs[k]) for k in theirs)
    assert not shared.state.array_records


def test_what_finish_gives_must_be_what_the_algorithm_declares() -> None:
    with pytest.raises(
        ValueError, match=r"the algorithm's state \['other'\] are not the declared \['tally'\]"
    ):
        client_state.records("state", {"other": {}}, ("tally",))


def test_a_messages_missing_declared_arrays_are_named() -> None:
    algorithm = workload.load(scenario_toml("tests.stateful:Tally"), None, None).algorithm
    bare = RecordDict({keys.CONFIG: ConfigRecord()})
    with pytest.raises(ValueError, match="lacks the algorithm's 'scale' arrays"):
        client_state.received(bare.array_records.get, algorithm)
