"""The comparison table from known per-run metrics, worked out by hand."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from pathlib import Path

import pytest

from fedsim.results.comparison import (
    RunResult,
    comparison,
    load_run,
    mean_std,
    rounds_to_target,
    to_csv,
    to_markdown,
)
from fedsim.results.records import RoundRecord


def record(n: int, accuracy: float | None, sent: int = 2_000_000, received: int = 1_000_000) -> RoundRecord:
    return RoundRecord(
        n,
        accuracy,
        None if accuracy is None else 1 - accuracy,
        0.5,
        None,
        None,
        2,
        0,
        1.0,
        0.1,
        sent,
        received,
        virtual_time_s=10.0 * n,  # each round 10 virtual seconds
    )


def run(label: str, seed: int, accuracies: list[float | None], error: str | None = None) -> RunResult:
    records = tuple(record(i + 1, a) for i, a in enumerate(accuracies))
    return RunResult(label, seed, records, wall_time_s=10.0 + seed, error=error)


# Three seeds of "a": finals 0.6, 0.8, 0.7; bests 0.6, 0.8, 0.9; target 0.7 reached in rounds -, 2, 2.
A = [
    run("a", 0, [0.2, 0.4, 0.6]),
    run("a", 1, [0.3, 0.8, 0.8]),
    run("a", 2, [0.5, 0.9, 0.7]),
]


def test_mean_and_sample_standard_deviation() -> None:
    stat = mean_std([0.6, 0.8, 0.7])
    assert stat is not None and stat.mean == pytest.approx(0.7) and stat.std == pytest.approx(0.1)
    one = mean_std([3.0])
    assert one is not None and (one.mean, one.std, one.n) == (3.0, 0.0, 1)
    assert mean_std([]) is None


def test_rounds_to_target_is_the_first_evaluated_round_at_or_above_it() -> None:
    records = [record(1, 0.5), record(2, None), record(3, 0.7), record(4, 0.9)]
    assert rounds_to_target(records, 0.7) == 3
    assert rounds_to_target(records, 0.95) is None
    assert rounds_to_target(records, None) is None


def test_variant_row_over_seeds() -> None:
    (row,) = comparison(A, target=0.7)
    assert (row.label, row.runs, row.completed) == ("a", 3, 3)
    assert row.final_accuracy is not None and row.final_accuracy.mean == pytest.approx(0.7)
    assert row.final_accuracy.std == pytest.approx(0.1)
    assert row.best_accuracy is not None and row.best_accuracy.mean == pytest.approx(2.3 / 3)
    assert row.best_accuracy.std == pytest.approx(
        math.sqrt(((0.6 - 2.3 / 3) ** 2 + (0.8 - 2.3 / 3) ** 2 + (0.9 - 2.3 / 3) ** 2) / 2)
    )
    assert row.reached == 2 and row.rounds_to_target is not None
    assert (row.rounds_to_target.mean, row.rounds_to_target.std) == (2.0, 0.0)
    assert row.wall_time_s is not None and row.wall_time_s.mean == pytest.approx(11.0)
    assert row.bytes_sent is not None and row.bytes_sent.mean == 6_000_000  # 3 rounds of 2 MB
    assert row.bytes_received is not None and row.bytes_received.mean == 3_000_000
    assert row.errors == ()


def test_a_failed_run_is_reported_and_counts_toward_the_best_accuracy_only() -> None:
    results = [
        *A,
        run("b", 0, [0.4]),
        run("b", 1, [0.1], error="RunError: boom"),
        run("c", 0, [], error="no data"),
    ]
    rows = comparison(results, target=None)
    assert [r.label for r in rows] == ["a", "b", "c"]
    b, c = rows[1], rows[2]
    assert (b.runs, b.completed, b.errors) == (2, 1, ("seed 1: RunError: boom",))
    assert b.final_accuracy is not None and (b.final_accuracy.mean, b.final_accuracy.n) == (0.4, 1)
    assert (c.completed, c.final_accuracy, c.errors) == (0, None, ("seed 0: no data",))
    assert b.best_accuracy is not None and (b.best_accuracy.mean, b.best_accuracy.n) == (0.25, 2)
    assert c.best_accuracy is None  # it recorded no round


def test_markdown_and_csv_show_the_rows() -> None:
    rows = comparison([*A, run("b", 1, [0.1], error="boom")], target=0.7)
    markdown = to_markdown(rows, target=0.7).splitlines()
    assert markdown[0].startswith("| variant | runs | final accuracy | best accuracy | rounds to 0.7 |")
    assert (
        markdown[2]
        == "| a | 3 | 0.7000 ± 0.1000 | 0.7667 ± 0.1528 | 2.0 ± 0.0 (2/3) | 20.0 ± 0.0 | 11.0 ± 1.0 "
        "| 6.0 | 3.0 | ok |"
    )
    assert markdown[3].endswith("| failed: seed 1: boom |") and "| - |" in markdown[3]
    lines = to_csv(rows, target=0.7).splitlines()
    assert lines[0].startswith("variant,runs,completed,target_accuracy,reached_target,final_accuracy_mean")
    a, b = list(csv.reader(lines[1:]))
    assert a[:5] == ["a", "3", "3", "0.7", "2"] and [float(v) for v in a[5:9]] == pytest.approx(
        [0.7, 0.1, 0.7667, 0.1528], abs=1e-4
    )
    # A failed run's best is what it reached before it failed; the rest are over completed runs only.
    assert b == ["b", "1", "0", "0.7", "0", "", "", "0.1", "0.0", *[""] * 10, "seed 1: boom"]


def test_load_run_reads_a_run_folder(tmp_path: Path) -> None:
    (tmp_path / "scenario.toml").write_text('name = "fedavg"\nseed = 4\n')
    rows = [record(1, 0.5), record(2, 0.75)]
    lines = [json.dumps({**r.row(), "tau": 1}) for r in rows]  # a strategy's own metric
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "summary.json").write_text(json.dumps({"status": "completed", "wall_time_s": 3.5}))
    result = load_run(tmp_path)
    assert (result.label, result.seed, result.wall_time_s, result.error) == ("fedavg", 4, 3.5, None)
    assert result.records == tuple(dataclasses.replace(r, extra={"tau": 1.0}) for r in rows)
    (tmp_path / "summary.json").unlink()
    assert load_run(tmp_path).error == "did not finish (no summary.json)"


def test_per_client_means_and_worst_tenths_show_over_seeds_where_runs_have_them() -> None:
    def evaluated(label: str, seed: int, mean: float, worst: float, personal: float | None) -> RunResult:
        stats = {"clients_evaluated": 10.0, "client_acc_mean": mean, "client_acc_worst10": worst}
        if personal is not None:
            stats |= {"personal_acc_mean": personal, "personal_acc_worst10": personal - 0.2}
        last = dataclasses.replace(record(2, 0.5), extra=stats)
        return RunResult(label, seed, (record(1, 0.4), last), wall_time_s=1.0)

    runs = [evaluated("g", 0, 0.6, 0.2, None), evaluated("g", 1, 0.8, 0.4, None)]
    runs += [evaluated("p", 0, 0.6, 0.2, 0.9)]
    rows = comparison(runs, None)
    assert rows[0].clients["client_acc_mean"] == mean_std([0.6, 0.8])
    assert "personal_acc_mean" not in rows[0].clients
    table = to_markdown(rows, None)
    assert "| client mean | client worst 10 % | personal mean | personal worst 10 % |" in table
    assert "| 0.7000 ± 0.1414 | 0.3000 ± 0.1414 | - | - |" in table
    assert "| 0.6000 | 0.2000 | 0.9000 | 0.7000 |" in table
    header = next(csv.reader([to_csv(rows, None).splitlines()[0]]))
    assert header[-2:] == ["personal_acc_worst10_mean", "personal_acc_worst10_std"]
    plain = to_markdown(comparison([run("a", 0, [0.5])], None), None)
    assert "client mean" not in plain  # no per-client evaluation: no such columns
