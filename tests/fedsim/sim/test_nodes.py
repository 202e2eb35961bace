"""The Ray node a train reply names is taken out before screening and counted per node.

Replies are Flower Messages as a ClientApp in a Ray worker sends them: arrays, metrics and
the ``ray-node`` record that clients/node.py's mod adds (no Ray here: the record is built
as that mod builds it).
"""

from __future__ import annotations

import pytest
from flwr.app import ArrayRecord, ConfigRecord, Error, Message, MessageType, MetricRecord, RecordDict
from flwr.supercore.task_identity import TaskIdentity

from fedsim import protocol as keys
from fedsim.models.build import build_model
from fedsim.scenario.files import parse_scenario
from fedsim.sim import cohort_engine, nodes
from fedsim.sim.replies import screen_train
from tests.conftest import REPO

SCENARIO = parse_scenario((REPO / "fedsim" / "quickstart.toml").read_text(), ("data.params.devices=4",))


@pytest.fixture(autouse=True)
def server_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Flower's Message needs the run/node identity that a ServerApp process has."""
    for name, value in (("_run_id", 1), ("_node_id", 0), ("_task_id", 1)):
        monkeypatch.setattr(TaskIdentity, name, value)


@pytest.fixture
def arrays() -> ArrayRecord:
    return ArrayRecord(build_model(SCENARIO.model, (60,), 10, seed=0).state_dict())


def ask(arrays: ArrayRecord, node: int) -> Message:
    config = ConfigRecord({keys.SCENARIO: SCENARIO.to_toml(), keys.SERVER_ROUND: 1})
    content = RecordDict({keys.ARRAYS: arrays, keys.CONFIG: config})
    return Message(content, dst_node_id=node, message_type=MessageType.TRAIN)


def reply(request: Message, arrays: ArrayRecord, ray_node: object = None) -> Message:
    metrics = MetricRecord({keys.NUM_EXAMPLES: 10.0, keys.TRAIN_LOSS: 0.5})
    content = RecordDict({keys.ARRAYS: arrays, keys.METRICS: metrics})
    if ray_node is not None:
        content[keys.RAY_NODE] = ConfigRecord({keys.RAY_NODE_NAME: ray_node})  # type: ignore[dict-item]
    return Message(content, reply_to=request)


def test_a_named_reply_passes_screening_once_its_node_is_taken_out(arrays: ArrayRecord) -> None:
    named = reply(ask(arrays, 7), arrays, "0a1b2c3d@10.0.0.1")
    assert screen_train([named], arrays).rejected  # as the strategy would see it: an extra record
    assert nodes.take([named]) == {7: "0a1b2c3d@10.0.0.1"}
    assert keys.RAY_NODE not in named.content and screen_train([named], arrays).accepted == [named]


def test_clients_are_counted_per_node_over_a_rounds_attempts(arrays: ArrayRecord) -> None:
    names = ["0a1b2c3d@10.0.0.1", "4e5f6a7b@10.0.0.2", "0a1b2c3d@10.0.0.1", None]
    replies = [reply(ask(arrays, n), arrays, name) for n, name in enumerate(names)]
    named = nodes.take(replies)
    first = nodes.count(replies, named)
    assert first == {"0a1b2c3d@10.0.0.1": 2, "4e5f6a7b@10.0.0.2": 1}  # a SuperNode's reply: no name
    assert nodes.count(replies[1:2], named) == {"4e5f6a7b@10.0.0.2": 1}  # only the delivering ones
    assert nodes.total([first, {"4e5f6a7b@10.0.0.2": 2}]) == {"0a1b2c3d@10.0.0.1": 2, "4e5f6a7b@10.0.0.2": 3}


def test_a_malformed_node_record_is_taken_out_but_names_no_node(arrays: ArrayRecord) -> None:
    odd = [reply(ask(arrays, 1), arrays, 3), reply(ask(arrays, 2), arrays, "x" * (nodes.MAX_NAME + 1))]
    errored = Message(Error(1, "boom"), reply_to=ask(arrays, 3))
    assert nodes.take([*odd, errored]) == {}
    assert all(keys.RAY_NODE not in r.content for r in odd)


def test_the_cohort_engine_gives_each_member_the_node_of_its_groups_worker(arrays: ArrayRecord) -> None:
    asked = [ask(arrays, node) for node in (10, 11, 12)]
    groups = cohort_engine.group(asked, {10: 0, 11: 1, 12: 2}, size=3, epochs=1)
    content = RecordDict({keys.RAY_NODE: ConfigRecord({keys.RAY_NODE_NAME: "4e5f6a7b@10.0.0.2"})})
    for pid in (0, 1, 2):
        content[keys.member_record(keys.ARRAYS, pid)] = arrays
        content[keys.member_record(keys.METRICS, pid)] = MetricRecord(
            {keys.NUM_EXAMPLES: 10.0, keys.TRAIN_LOSS: 0.5}
        )
    members = cohort_engine.split([Message(content, reply_to=groups[0].message)], groups)
    named = nodes.take(members)
    assert nodes.count(members, named) == {"4e5f6a7b@10.0.0.2": 3}
    assert len(screen_train(members, arrays).accepted) == 3
