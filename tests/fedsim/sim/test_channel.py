"""[compression] between the server's halves (fedsim/sim/channel.py) and the real ClientApp, in-process."""

from __future__ import annotations

import math

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.supercore.task_identity import TaskIdentity

import clients.app as client_app
from fedsim import protocol as keys
from fedsim.models.build import build_model
from fedsim.scenario.files import parse_scenario
from fedsim.sim.channel import decode_replies, encode_downlink, task_bytes
from fedsim.sim.replies import screen_train
from strategies.compression import decode, like
from tests.conftest import REPO

COMPRESSED = ('compression.uplink="topk"', "compression.fraction=0.5", 'compression.downlink="int8"')
SCENARIO = parse_scenario(
    (REPO / "fedsim" / "quickstart.toml").read_text(), ("data.params.devices=3", *COMPRESSED)
)
RESIDUAL = keys.state_record(keys.COMPRESSION_RESIDUAL)


@pytest.fixture(autouse=True)
def server_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (("_run_id", 1), ("_node_id", 0), ("_task_id", 1)):
        monkeypatch.setattr(TaskIdentity, name, value)


def ask(arrays: ArrayRecord, node: int) -> Message:
    config = ConfigRecord({keys.SCENARIO: SCENARIO.to_toml(), keys.DATA_ROOT: "", keys.SERVER_ROUND: 1})
    content = RecordDict({keys.ARRAYS: arrays, keys.CONFIG: config})
    return Message(content, dst_node_id=node, message_type=MessageType.TRAIN)


def supernode(node: int) -> Context:  # keeps its client's state itself
    config = {keys.NODE_PARTITION_ID: node, keys.NODE_NUM_PARTITIONS: 3}
    return Context(run_id=1, node_id=node, node_config=config, state=RecordDict(), run_config={})


def test_a_topk_update_over_an_int8_model_decodes_into_a_model_screening_accepts() -> None:
    model = ArrayRecord(build_model(SCENARIO.model, (60,), 10, seed=0).state_dict())
    sent = encode_downlink([ask(model, 0), ask(model, 1)], SCENARIO, 1, "train")
    carried = sent[0].content.array_records[keys.ARRAYS]
    assert sent[1].content.array_records[keys.ARRAYS] is carried  # one encoding, broadcast
    assert carried.count_bytes() < model.count_bytes() / 3  # int8 and a scale per array
    node = supernode(0)
    reply = client_app.train(sent[0], node)
    encoded = keys.to_numpy(reply.content.array_records[keys.ARRAYS])
    assert {f"{name}:index" for name in model} <= set(encoded)
    [decoded] = decode_replies([reply], carried, model, SCENARIO)
    assert screen_train([decoded], model).rejected == []
    # The client's model is what it received plus half of each tensor's update; the residual
    # holds the other half, where the decoded model has none of it.
    received = decode(keys.to_numpy(carried), "int8", like(keys.to_numpy(model)))
    residual = keys.to_numpy(node.state.array_records[RESIDUAL])
    for name, y in keys.to_numpy(decoded.content.array_records[keys.ARRAYS]).items():
        moved = y != received[name]
        assert moved.sum() <= math.ceil(y.size / 2) and not residual[name][moved].any()


def test_a_reply_the_codec_did_not_make_is_dropped_saying_why() -> None:
    model = ArrayRecord(build_model(SCENARIO.model, (60,), 10, seed=0).state_dict())
    [request] = encode_downlink([ask(model, 0)], SCENARIO, 1, "train")
    carried = request.content.array_records[keys.ARRAYS]  # before the client reads it in-process
    reply = client_app.train(request, supernode(0))
    plain = RecordDict({**dict(reply.content.items()), keys.ARRAYS: model})  # uncompressed
    faker = Message(plain, reply_to=ask(model, 0))
    [decoded] = decode_replies([faker], carried, model, SCENARIO)
    [reason] = screen_train([decoded], model).rejected
    assert "not topk" in reason
    assert np.array_equal(faker.content.array_records[keys.ARRAYS]["1.bias"].numpy(), model["1.bias"].numpy())


def test_task_bytes_are_the_encoded_sizes_worked_out_by_hand() -> None:
    model = ArrayRecord({"w": Array(np.zeros(100, np.float32)), "n": Array(np.zeros(1, np.int64))})
    scenario = parse_scenario("[compression]\nuplink = 'topk'\nfraction = 0.1\ndownlink = 'int8'")
    down, up = task_bytes(model, scenario)
    # .npy files: a 128-byte header, then the data; Flower adds each key's length.
    int64_n = 128 + 8 + len("n")
    assert down == (128 + 100 + len("w")) + (128 + 4 + len("w:scale")) + int64_n
    assert up == (128 + 10 * 4 + len("w")) + (128 + 10 * 4 + len("w:index")) + int64_n
    plain = parse_scenario("")
    assert task_bytes(model, plain) == (model.count_bytes(), model.count_bytes())
