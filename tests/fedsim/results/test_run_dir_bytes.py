from __future__ import annotations

from fedsim.results.records import RoundRecord, summarize
from fedsim.scenario.sections import Scenario


def test_summary_totals_the_bytes_of_every_round() -> None:
    rounds = [
        RoundRecord(1, 0.5, 1.0, 1.0, None, None, 2, 0, 1.0, 0.1, bytes_sent=300, bytes_received=200),
        RoundRecord(2, 0.6, 0.9, 0.9, None, None, 2, 0, 1.0, 0.1, bytes_sent=300, bytes_received=150),
    ]
    summary = summarize(Scenario(), rounds, wall_time_s=2.0)
    assert (summary.bytes_sent, summary.bytes_received) == (600, 350)
