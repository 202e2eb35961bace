"""Outside Ray (a SuperNode) a client names no node.

The Ray side itself runs in tests/test_multinode.py, on two real nodes.
"""

from __future__ import annotations

import pytest
from flwr.app import Context, Message, MessageType, MetricRecord, RecordDict

from clients import node
from fedsim import protocol as keys

pytestmark = pytest.mark.usefixtures("task_identity")


def test_outside_ray_a_train_reply_names_no_node() -> None:
    request = Message(RecordDict(), dst_node_id=1, message_type=MessageType.TRAIN)
    answer = Message(RecordDict({keys.METRICS: MetricRecord({keys.NUM_EXAMPLES: 1.0})}), reply_to=request)
    context = Context(run_id=1, node_id=1, node_config={}, state=RecordDict(), run_config={})
    assert node.name() is None
    assert keys.RAY_NODE not in node.naming_mod(request, context, lambda m, c: answer).content
