"""The server's bookkeeping around Flower's strategies: bytes per round, model dtypes."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAdam

from fedsim import protocol as keys
from fedsim.data import load_federated
from fedsim.results.run_dir import RunDirectory
from fedsim.scenario.files import parse_scenario
from fedsim.sim.server import Abort, Job, Pool, array_bytes, in_dtypes_of, serve
from tests.conftest import RecordingReporter, file_size_limit

SMALL = """
name = "small"
rounds = 2
[data]
dataset = "synthetic"
partition = "natural"
num_clients = 3
[model]
name = "logreg"
[strategy]
fraction_train = 1.0
"""

pytestmark = pytest.mark.usefixtures("task_identity")


def test_array_bytes_counts_each_message_and_every_array_record() -> None:
    model = ArrayRecord([np.zeros(10, dtype=np.float32)])  # 40 bytes of data, plus header and key
    shared = RecordDict({"arrays": model})
    sent = [Message(shared, dst_node_id=n, message_type=MessageType.TRAIN) for n in (1, 2, 3)]
    assert array_bytes(sent) == 3 * model.count_bytes() and model.count_bytes() > 40
    two = RecordDict({"arrays": model, "c": model})  # an algorithm's array beside the model
    assert (
        array_bytes([Message(two, dst_node_id=1, message_type=MessageType.TRAIN)]) == 2 * model.count_bytes()
    )
    assert array_bytes([Message(RecordDict(), dst_node_id=1, message_type=MessageType.QUERY)]) == 0


def test_array_bytes_leaves_out_the_client_state_a_pooled_nodes_message_carries() -> None:
    model = ArrayRecord([np.zeros(10, dtype=np.float32)])
    carried = RecordDict({keys.ARRAYS: model, "c": model, keys.state_record("c_i"): model})
    sent = [Message(carried, dst_node_id=1, message_type=MessageType.TRAIN)]
    assert array_bytes(sent) == 2 * model.count_bytes()  # a real client keeps its state: never sent


class _Grid:
    def get_node_ids(self) -> list[int]:
        return [1]


def test_the_global_model_keeps_its_dtype_through_fedadam() -> None:
    x = ArrayRecord({"w": Array(np.array([1.0, 2.0], dtype=np.float32))})
    strategy = FedAdam(fraction_train=1.0, min_train_nodes=1, min_available_nodes=1)
    (sent,) = strategy.configure_train(1, x, ConfigRecord(), _Grid())  # type: ignore[arg-type]
    y = ArrayRecord({"w": Array(np.array([0.5, 2.5], dtype=np.float32))})
    metrics = MetricRecord({keys.NUM_EXAMPLES: 1.0})
    new, _ = strategy.aggregate_train(
        1, [Message(RecordDict({"arrays": y, "metrics": metrics}), reply_to=sent)]
    )
    assert new is not None and new["w"].dtype == "float64"  # Flower's float64 step size promotes
    kept = in_dtypes_of(x, new)
    assert kept["w"].dtype == "float32" and kept.count_bytes() < new.count_bytes()
    assert kept["w"].numpy() == pytest.approx(new["w"].numpy())
    assert in_dtypes_of(x, y) is y  # nothing to do


class GridBroke(RuntimeError):
    pass


class _GridFailingAsTheDiskFills:
    """Three nodes connect; the first message sent fails, and from then on no file fits on the disk."""

    def __init__(self, stack: contextlib.ExitStack) -> None:
        self.stack = stack

    def get_node_ids(self) -> list[int]:
        return [1, 2, 3]

    def push_messages(self, messages: list[Message]) -> list[str]:
        self.stack.enter_context(file_size_limit(1024))  # the model (2.4 kB) no longer fits
        raise GridBroke("the grid broke")


def test_a_full_disk_while_closing_a_failed_run_does_not_hide_why_it_failed(tmp_path: Path) -> None:
    scenario = parse_scenario(SMALL)
    data = load_federated(scenario.data, scenario.seed)
    job = Job(scenario, data, None, RunDirectory(tmp_path / "run", scenario), time.perf_counter())
    reporter = RecordingReporter()
    with contextlib.ExitStack() as stack, pytest.raises(GridBroke, match="the grid broke"):
        serve(_GridFailingAsTheDiskFills(stack), job, reporter, Abort(), Pool(3, None))  # type: ignore[arg-type]
    assert [w for w in reporter.warnings if "could not write the run's results" in w] == [
        f"could not write the run's results: {tmp_path / 'run' / 'model.pt'}: File too large"
    ]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())  # small: it fits
    assert summary["status"] == "failed" and summary["error"] == "GridBroke: the grid broke"
    assert not (tmp_path / "run" / "model.pt").exists()
