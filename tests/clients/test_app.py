"""The ClientApp's train handler called directly, as Flower calls it, without Ray."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict

from clients import app, gpu, training
from fedsim import protocol as keys
from fedsim.data import Split, load_federated
from fedsim.models.build import build_model
from fedsim.scenario.files import parse_scenario
from strategies.attacks import malicious_partitions
from strategies.scaffold import to_numpy, to_record

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
    toml: str, x: dict[str, np.ndarray], server_round: int, c: dict[str, np.ndarray] | None
) -> Message:
    config = ConfigRecord({keys.SCENARIO: toml, keys.DATA_ROOT: "", keys.SERVER_ROUND: server_round})
    content = RecordDict({keys.ARRAYS: to_record(x), keys.CONFIG: config})
    if c is not None:
        content[keys.CONTROL] = to_record(c)
    return Message(content, dst_node_id=1, message_type=MessageType.TRAIN)


def node(partition_id: int) -> Context:
    return Context(
        1, 1, {keys.NODE_PARTITION_ID: partition_id, keys.NODE_NUM_PARTITIONS: 5}, RecordDict(), {}
    )


def reply_model(reply: Message) -> dict[str, np.ndarray]:
    return to_numpy(reply.content.array_records[keys.ARRAYS])


def test_scaffold_client_keeps_c_i_in_its_state_across_rounds() -> None:
    toml, context, x = scenario_toml("scaffold"), node(2), initial_model()
    scenario = parse_scenario(toml)
    samples = len(load_federated(scenario.data, scenario.seed).client(2))
    steps, lr = scenario.client.local_steps(samples), scenario.client.lr

    zero = {k: np.zeros_like(v) for k, v in x.items()}
    first = app.train(message(toml, x, 1, zero), context)
    y1 = reply_model(first)
    c_1 = to_numpy(context.state.array_records[keys.CLIENT_CONTROL])
    for k in x:  # c_i starts at 0 and c = 0: c_i+ = (x - y) / (K lr), and dc_i = c_i+
        assert c_1[k] == pytest.approx((x[k] - y1[k]) / (steps * lr), abs=1e-6)
        assert to_numpy(first.content.array_records[keys.CONTROL_DELTA])[k] == pytest.approx(c_1[k])

    c = {k: np.full_like(v, 0.01) for k, v in x.items()}
    second = app.train(message(toml, y1, 2, c), context)
    y2 = reply_model(second)
    c_2 = to_numpy(context.state.array_records[keys.CLIENT_CONTROL])
    for k in x:  # round 2 starts from the kept c_i, not from 0
        assert c_2[k] == pytest.approx(c_1[k] - c[k] + (y1[k] - y2[k]) / (steps * lr), abs=1e-6)
        assert to_numpy(second.content.array_records[keys.CONTROL_DELTA])[k] == pytest.approx(
            c_2[k] - c_1[k], abs=1e-6
        )


def test_scaffold_correction_changes_the_local_model() -> None:
    toml, x = scenario_toml("scaffold"), initial_model()
    plain = reply_model(app.train(message(toml, x, 1, {k: np.zeros_like(v) for k, v in x.items()}), node(0)))
    pulled = reply_model(
        app.train(message(toml, x, 1, {k: np.full_like(v, 0.5) for k, v in x.items()}), node(0))
    )
    assert not np.allclose(plain["1.weight"], pulled["1.weight"])


def test_without_scaffold_no_control_variates_travel_or_stay() -> None:
    context = node(1)
    reply = app.train(message(scenario_toml(), initial_model(), 1, None), context)
    assert set(reply.content.array_records) == {keys.ARRAYS}
    assert keys.CLIENT_CONTROL not in context.state.array_records


def test_a_malicious_client_sends_its_update_flipped_and_scaled() -> None:
    malicious = malicious_partitions(seed=3, population=5, fraction=0.4)
    attacker, honest = min(malicious), min(set(range(5)) - malicious)
    x = initial_model()
    attacked = scenario_toml(fraction=0.4)
    for pid, expected_factor in ((attacker, -4.0), (honest, 1.0)):
        y = reply_model(app.train(message(scenario_toml(), x, 1, None), node(pid)))  # as trained honestly
        sent = reply_model(app.train(message(attacked, x, 1, None), node(pid)))
        for k in x:
            assert sent[k] == pytest.approx(x[k] + expected_factor * (y[k] - x[k]), abs=1e-5)


def test_reply_arrays_load_into_the_model() -> None:
    reply = app.train(message(scenario_toml(), initial_model(), 1, None), node(0))
    model = build_model(parse_scenario(scenario_toml()).model, (60,), 10, seed=0)
    model.load_state_dict(reply.content.array_records[keys.ARRAYS].to_torch_state_dict())
    assert isinstance(reply.content.array_records[keys.ARRAYS], ArrayRecord)


def test_a_client_that_outgrows_its_gpu_share_fails_alone_and_the_actor_trains_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    toml, x = scenario_toml(), initial_model()
    work = app._workload(toml, None, None)  # the cached workload _setup finds (no data shipped)
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
        app.train(message(toml, x, 1, None), node(3))
    assert str(caught.value).startswith(
        "client 3 needed more than its GPU share (resources.client_gpus = 0.1, 14.0 of 140.0 GiB)"
    )
    reply = app.train(message(toml, x, 1, None), node(4))
    assert set(reply.content.array_records) == {keys.ARRAYS}


def test_a_gpu_workers_kept_partitions_stop_at_the_training_sets_rows() -> None:
    """Clients drawn with replacement (a million of them) would otherwise fill the GPU; the least
    recently trained are forgotten first, and the newest is always kept."""

    def rows(n: int) -> Split:
        return Split(torch.zeros(n, 1), torch.zeros(n, dtype=torch.int64))

    kept: OrderedDict[int, Split] = OrderedDict((pid, rows(60)) for pid in (1, 2, 3))
    kept.move_to_end(1)  # trained again: now the most recent
    app.keep_within(kept, 130)
    assert list(kept) == [3, 1]
    kept[4] = rows(500)
    app.keep_within(kept, 130)
    assert list(kept) == [4]
