"""The server's copy of SCAFFOLD's client state matches the client's, bit for bit, and goes back."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import ConfigRecord, Context, Message, RecordDict

from clients import app
from fedsim import protocol as keys
from fedsim.sim.clientstate import ClientStates
from strategies.scaffold import to_numpy, to_record
from tests.clients.test_app import initial_model, message, node, reply_model, scenario_toml

pytestmark = pytest.mark.usefixtures("task_identity")


def kept(context: Context) -> dict[str, np.ndarray]:
    return to_numpy(context.state.array_records[keys.CLIENT_CONTROL])


def test_the_copy_follows_each_client_exactly_over_rounds() -> None:
    toml, x = scenario_toml("scaffold"), initial_model()
    contexts = {2: node(2), 4: node(4)}
    copy = ClientStates()
    c = {k: np.zeros_like(v) for k, v in x.items()}
    for server_round in (1, 2, 3):
        for partition, context in contexts.items():
            reply = app.train(message(toml, x, server_round, c), context)
            copy.observe(partition, reply)
            x = reply_model(reply)  # any model will do: the client's state is what is followed
        c = {k: v + np.float32(0.001) for k, v in c.items()}
    for partition, context in contexts.items():
        ours, theirs = copy.controls[partition], kept(context)
        assert list(ours) == list(theirs)
        assert all(np.array_equal(ours[k], theirs[k]) and ours[k].dtype == theirs[k].dtype for k in ours)
    assert sorted(copy.take_changed()) == ["2", "4"] and list(copy.take_changed()) == []


def pooled(msg: Message, partition: int) -> Message:
    """``msg`` as a pool's node gets it: naming the client it stands in for."""
    config = {**msg.content.config_records[keys.CONFIG], keys.PARTITION_ID: partition}
    content = RecordDict({**dict(msg.content.items()), keys.CONFIG: ConfigRecord(config)})
    return Message(content, dst_node_id=msg.metadata.dst_node_id, message_type=msg.metadata.message_type)


def test_one_pooled_node_standing_in_for_two_clients_trains_each_as_its_own_node_would() -> None:
    toml, x = scenario_toml("scaffold"), initial_model()
    own = {2: node(2), 4: node(4)}  # each client on a node of its own
    shared = node(0)  # one pooled node: node 1, partition 0 in its config, which messages override
    ours, theirs = ClientStates(), ClientStates()
    c = {k: np.zeros_like(v) for k, v in x.items()}
    for server_round in (1, 2, 3):
        for partition in (2, 4):
            msg = message(toml, x, server_round, c)
            (carried,) = ours.attach([pooled(msg, partition)], {1: partition})
            if server_round == 1:  # nothing kept yet: nothing carried
                assert keys.CLIENT_CONTROL not in carried.content.array_records
            ours.observe(partition, app.train(carried, shared))
            theirs.observe(partition, app.train(msg, own[partition]))
        c = {k: v + np.float32(0.001) for k, v in c.items()}
    for partition in (2, 4):
        assert all(np.array_equal(ours.controls[partition][k], kept(own[partition])[k]) for k in x)
        assert all(np.array_equal(ours.controls[partition][k], theirs.controls[partition][k]) for k in x)
    assert keys.CLIENT_CONTROL not in shared.state.array_records  # the pooled node kept nothing


def test_a_reply_without_client_state_changes_nothing() -> None:
    copy = ClientStates()
    copy.observe(0, app.train(message(scenario_toml(), initial_model(), 1, None), node(0)))
    assert copy.controls == {} and copy.state() == {}


def test_the_handback_query_sets_a_fresh_nodes_state() -> None:
    toml, x = scenario_toml("scaffold"), initial_model()
    trained = node(1)
    copy = ClientStates()
    copy.observe(1, app.train(message(toml, x, 1, {k: np.zeros_like(v) for k, v in x.items()}), trained))
    restored = ClientStates()
    restored.restore(copy.state())
    (query,) = restored.handback({1: 501})
    assert query.metadata.dst_node_id == 501
    fresh = node(1)  # as after a restart: Flower's per-node state is empty
    answer = app.query(Message(query.content, dst_node_id=1, message_type=query.metadata.message_type), fresh)
    assert answer.content.metric_records[keys.METRICS][keys.PARTITION_ID] == 1.0
    assert all(np.array_equal(kept(fresh)[k], kept(trained)[k]) for k in kept(trained))


def test_a_query_sets_only_the_records_clients_keep() -> None:
    context = node(0)
    junk = RecordDict({"other": to_record({"w": np.zeros(2, np.float32)})})
    app.query(Message(junk, dst_node_id=1, message_type="query"), context)
    assert "other" not in context.state.array_records
