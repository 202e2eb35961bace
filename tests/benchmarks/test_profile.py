"""Sorting py-spy's collapsed stacks into where the time went."""

from __future__ import annotations

from benchmarks.profile import categorize, summarize


def test_the_first_matching_category_wins_and_counts_add_up_per_process() -> None:
    raw = "\n".join(
        [
            'process 1:"driver";main (x.py:1);get_message_ins (flwr/server/superlink/linkstate/s.py:9) 30',
            'process 1:"driver";_find_and_load (<frozen>:1);<module> (flwr/x.py:1) 20',
            'process 2:"ray::ClientAppActor";train (clients/training.py:50);backward (torch/_tensor.py:1) 45',
            'process 2:"ray::ClientAppActor";train (clients/training.py:5);forward (torch/nn/modules/c:1) 5',
            "not a stack line",
        ]
    )
    summary = summarize(raw)
    assert summary['process 1:"driver"'] == {"flower: link state": 30, "imports and start-up": 20}
    assert summary['process 2:"ray::ClientAppActor"'] == {"compute: backward": 45, "compute: forward": 5}
    assert categorize("main (somewhere.py:1)") == "other"
