"""A round's row: RoundRecord's fields, then the strategy's own metrics under their names."""

from __future__ import annotations

import json

import pytest

from fedsim.results.records import RoundRecord, summarize
from fedsim.scenario.files import parse_scenario
from fedsim.scenario.tables import ScenarioError


def test_a_strategys_metrics_are_keys_of_the_row_and_come_back() -> None:
    record = RoundRecord(1, 0.5, 1.0, 1.0, None, None, 4, 0, 0.1, 0.1, extra={"tau_eff": 12.5})
    row = record.row()
    assert "extra" not in row and row["tau_eff"] == 12.5 and row["accuracy"] == 0.5
    assert RoundRecord.from_row(row) == record
    assert RoundRecord.from_row({**row, "note": "text"}).extra == {"tau_eff": 12.5}  # numbers only


def test_the_summary_times_the_first_evaluation_reaching_the_target() -> None:
    scenario = parse_scenario("[evaluation]\nevery = 1\ntarget_accuracy = 0.8\n")
    accuracies = [(0.5, 1.5), (None, 2.5), (0.8, 3.25), (0.9, 4.0)]  # (accuracy, elapsed_s) per round
    records = [
        RoundRecord(n, a, 1.0, 1.0, None, None, 4, 0, 0.1, 0.1, elapsed_s=t)
        for n, (a, t) in enumerate(accuracies, 1)
    ]
    summary = summarize(scenario, records, wall_time_s=5.0)
    assert (summary.round_reached_target, summary.time_to_target_s) == (3, 3.25)
    assert summarize(scenario, records[:2], wall_time_s=5.0).time_to_target_s is None


@pytest.mark.parametrize(
    ("evaluation", "error"),
    [
        (
            "stop_at_target = true",
            r"^evaluation\.stop_at_target: stops at evaluation\.target_accuracy: set it$",
        ),
        (
            "stop_at_target = true\ntarget_accuracy = 0.9\ncentralized = false",
            r"^evaluation\.stop_at_target: stops on the centralized accuracy",
        ),
    ],
)
def test_stopping_at_a_target_needs_one_and_the_centralized_accuracy(evaluation: str, error: str) -> None:
    with pytest.raises(ScenarioError, match=error):
        parse_scenario(f"[evaluation]\n{evaluation}\n")


def test_the_clients_per_ray_node_come_back_and_old_rows_read_as_none_named() -> None:
    nodes = {"0a1b2c3d@10.0.0.1": 3, "4e5f6a7b@10.0.0.2": 2}
    record = RoundRecord(1, 0.5, 1.0, 1.0, None, None, 5, 0, 0.1, 0.1, client_nodes=nodes)
    row = record.row()
    assert row["client_nodes"] == nodes and RoundRecord.from_row(row) == record
    assert RoundRecord.from_row(json.loads(json.dumps(row))) == record  # as metrics.jsonl holds it
    del row["client_nodes"]  # a row written before nodes were recorded
    assert RoundRecord.from_row(row).client_nodes == {}
