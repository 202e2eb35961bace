"""The ClientApp's train handler called directly, as Flower calls it, without Ray."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict

from clients import app, gpu, training, workload
from fedsim import protocol as keys
from fedsim.data import Split
from fedsim.models.build import build_model
from fedsim.scenario.files import parse_scenario
from fedsim.scenario.tables import ScenarioError
from strategies.attacks import malicious_partitions

pytestmark = pytest.mark.usefixtures("task_identity")

SCENARIO = """
    seed = 3
    [data]
    dataset = "synthetic"
    partition = "natural"
    [data.params]
    devices = 5
    [model]
    name = "logreg"
    [client]
    batch_size = 16
    lr = 0.05
    [strategy]
    name = "{strategy}"
    [attack]
    fraction = {fraction}
"""


def scenario_toml(strategy: str = "fedavg", fraction: float = 0.0) -> str:
    return parse_scenario(SCENARIO.format(strategy=strategy, fraction=fraction)).to_toml()


def initial_model() -> dict[str, np.ndarray]:
    model = build_model(parse_scenario(scenario_toml()).model, (60,), 10, seed=3)
    return {k: v.numpy() for k, v in model.state_dict().items()}


def message(
    toml: str,
    x: dict[str, np.ndarray],
    server_round: int,
    sent: dict[str, dict[str, np.ndarray]] | None = None,
    config: dict[str, Any] | None = None,
) -> Message:
    """A train message as the server sends it; ``sent``: the algorithm's arrays beside the model."""
    record = ConfigRecord(
        {keys.SCENARIO: toml, keys.DATA_ROOT: "", keys.SERVER_ROUND: server_round, **(config or {})}
    )
    content = RecordDict({keys.ARRAYS: keys.to_record(x), keys.CONFIG: record})
    for name, arrays in (sent or {}).items():
        content[name] = keys.to_record(arrays)
    return Message(content, dst_node_id=1, message_type=MessageType.TRAIN)


def node(partition_id: int, allow: str = "tests") -> Context:
    """A node holding the partition; its operator allows the tests' plug-ins (``allow``)."""
    config = {
        keys.NODE_PARTITION_ID: partition_id,
        keys.NODE_NUM_PARTITIONS: 5,
        keys.NODE_ALLOW_PLUGINS: allow,
    }
    return Context(1, 1, config, RecordDict(), {})


def reply_model(reply: Message) -> dict[str, np.ndarray]:
    return keys.to_numpy(reply.content.array_records[keys.ARRAYS])


def test_without_an_algorithms_state_nothing_travels_or_stays() -> None:
    context = node(1)
    reply = app.train(message(scenario_toml(), initial_model(), 1), context)
    assert set(reply.content.array_records) == {keys.ARRAYS}
    assert not context.state.array_records


def test_a_malicious_client_sends_its_update_flipped_and_scaled() -> None:
    malicious = malicious_partitions(seed=3, population=5, fraction=0.4)
    attacker, honest = min(malicious), min(set(range(5)) - malicious)
    x = initial_model()
    attacked = scenario_toml(fraction=0.4)
    for pid, expected_factor in ((attacker, -4.0), (honest, 1.0)):
        y = reply_model(app.train(message(scenario_toml(), x, 1), node(pid)))  # as trained honestly
        sent = reply_model(app.train(message(attacked, x, 1), node(pid)))
        for k in x:
            assert sent[k] == pytest.approx(x[k] + expected_factor * (y[k] - x[k]), abs=1e-5)


def test_reply_arrays_load_into_the_model() -> None:
    reply = app.train(message(scenario_toml(), initial_model(), 1), node(0))
    model = build_model(parse_scenario(scenario_toml()).model, (60,), 10, seed=0)
    model.load_state_dict(reply.content.array_records[keys.ARRAYS].to_torch_state_dict())
    assert isinstance(reply.content.array_records[keys.ARRAYS], ArrayRecord)


def test_a_client_that_outgrows_its_gpu_share_fails_alone_and_the_actor_trains_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    toml, x = scenario_toml(), initial_model()
    monkeypatch.setattr(app, "_in_simulation", lambda: False)  # whether or not Ray is up in this process
    work = workload.load(toml, None, None, app.allowed_plugins(node(3)))  # the cached one _setup finds
    monkeypatch.setattr(work, "share", gpu.Share(0.1, 140 * 2**30))  # as claimed on a 140 GiB GPU
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    real_train, calls = training.train, []

    def train_once_out_of_memory(*args: Any, **kwargs: Any) -> float:
        calls.append(True)
        if len(calls) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_train(*args, **kwargs)

    monkeypatch.setattr(training, "train", train_once_out_of_memory)
    with pytest.raises(gpu.GpuShareExceeded) as caught:
        app.train(message(toml, x, 1), node(3))
    assert str(caught.value).startswith(
        "client 3 needed more than its GPU share (resources.client_gpus = 0.1, 14.0 of 140.0 GiB)"
    )
    reply = app.train(message(toml, x, 1), node(4))
    assert set(reply.content.array_records) == {keys.ARRAYS}


def test_a_gpu_workers_kept_partitions_stop_at_the_training_sets_rows() -> None:
    """Clients drawn with replacement (a million of them) would otherwise fill the GPU; the least
    recently trained are forgotten first, and the newest is always kept."""

    def rows(n: int) -> Split:
        return Split(torch.zeros(n, 1), torch.zeros(n, dtype=torch.int64))

    kept: OrderedDict[int, Split] = OrderedDict((pid, rows(60)) for pid in (1, 2, 3))
    kept.move_to_end(1)  # trained again: now the most recent
    workload.keep_within(kept, 130)
    assert list(kept) == [3, 1]
    kept[4] = rows(500)
    workload.keep_within(kept, 130)
    assert list(kept) == [4]


def test_a_supernode_imports_only_the_built_ins_and_the_plug_ins_its_operator_allowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The scenario comes from the server: a node imports nothing its operator did not allow."""
    monkeypatch.setattr(app, "_in_simulation", lambda: False)  # a SuperNode's ClientApp has no Ray
    assert set(app.train(message(scenario_toml(), initial_model(), 1), node(0)).content.array_records) == {
        keys.ARRAYS
    }
    named = scenario_toml("flwr.serverapp.strategy:FedAvg")  # a plug-in by import path
    with pytest.raises(ScenarioError, match=r"strategy\.name: .* \(--allow-plugin: none\); `fedsim client"):
        app.train(message(named, initial_model(), 1), node(0, allow=""))
    allowed = node(0, allow="mylab,flwr.serverapp")
    assert set(app.train(message(named, initial_model(), 1), allowed).content.array_records) == {keys.ARRAYS}
