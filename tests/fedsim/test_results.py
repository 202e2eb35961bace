from __future__ import annotations

import pytest
from flwr.app import ArrayRecord, Message, MessageType, RecordDict

from fedsim.results import RoundRecord, summarize
from fedsim.scenario import Scenario
from fedsim.server import array_bytes


def test_summary_totals_the_bytes_of_every_round() -> None:
    rounds = [
        RoundRecord(1, 0.5, 1.0, 1.0, None, None, 2, 0, 1.0, 0.1, bytes_sent=300, bytes_received=200),
        RoundRecord(2, 0.6, 0.9, 0.9, None, None, 2, 0, 1.0, 0.1, bytes_sent=300, bytes_received=150),
    ]
    summary = summarize(Scenario(), rounds, wall_time_s=2.0)
    assert (summary.bytes_sent, summary.bytes_received) == (600, 350)


@pytest.mark.usefixtures("task_identity")
def test_array_bytes_counts_each_message_and_every_array_record() -> None:
    import numpy as np

    model = ArrayRecord([np.zeros(10, dtype=np.float32)])  # 40 bytes of data, plus header and key
    shared = RecordDict({"arrays": model})
    sent = [Message(shared, dst_node_id=n, message_type=MessageType.TRAIN) for n in (1, 2, 3)]
    assert array_bytes(sent) == 3 * model.count_bytes() and model.count_bytes() > 40
    two = RecordDict({"arrays": model, "scaffold-c": model})
    assert (
        array_bytes([Message(two, dst_node_id=1, message_type=MessageType.TRAIN)]) == 2 * model.count_bytes()
    )
    assert array_bytes([Message(RecordDict(), dst_node_id=1, message_type=MessageType.QUERY)]) == 0
