"""Outside Ray (a SuperNode) a client names no node and its data root is its own; in a Ray
worker without the data root and without the driver's copy, one line names the node and the path.

The Ray side itself (names, the driver's copy) runs in tests/test_multinode.py, on two real nodes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from flwr.app import Context, Message, MessageType, MetricRecord, RecordDict

from clients import node
from fedsim import protocol as keys
from fedsim.scenario.files import parse_scenario

pytestmark = pytest.mark.usefixtures("task_identity")

MNIST = parse_scenario('[data]\ndataset = "mnist"\nnum_clients = 2\n[model]\nname = "logreg"\n')


def test_outside_ray_a_train_reply_names_no_node() -> None:
    request = Message(RecordDict(), dst_node_id=1, message_type=MessageType.TRAIN)
    answer = Message(RecordDict({keys.METRICS: MetricRecord({keys.NUM_EXAMPLES: 1.0})}), reply_to=request)
    context = Context(run_id=1, node_id=1, node_config={}, state=RecordDict(), run_config={})
    assert node.name() is None
    assert keys.RAY_NODE not in node.naming_mod(request, context, lambda m, c: answer).content


def test_outside_ray_a_missing_data_root_fails_with_the_loaders_own_words(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="fedsim data fetch mnist"):
        node.load_data(MNIST, tmp_path / "absent", None)


def test_a_ray_node_without_the_data_root_or_the_drivers_copy_names_itself_and_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(node, "name", lambda: "0a1b2c3d@10.0.0.2")  # as in a Ray worker
    with pytest.raises(FileNotFoundError) as raised:
        node.load_data(MNIST, tmp_path / "absent", None)
    line = str(raised.value)
    assert "\n" not in line and line.startswith("Ray node 0a1b2c3d@10.0.0.2: ")
    assert f"(data root {tmp_path / 'absent'})" in line and "put no copy" in line
