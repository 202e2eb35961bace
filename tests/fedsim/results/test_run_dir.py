"""The run folder and the summary computed from round records."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
import torch

from fedsim.results.records import RoundRecord, summarize
from fedsim.results.run_dir import RunDirectory, read_metrics
from fedsim.scenario.files import parse_scenario
from fedsim.scenario.tables import ScenarioError
from tests.conftest import file_size_limit


def record(r: int, accuracy: float | None) -> RoundRecord:
    return RoundRecord(
        round=r,
        accuracy=accuracy,
        loss=None if accuracy is None else 1 - accuracy,
        train_loss=0.5,
        fed_accuracy=None,
        fed_loss=None,
        clients_sampled=10,
        clients_failed=0,
        round_time_s=1.23456,
        eval_time_s=0.1,
    )


def test_summary_by_hand() -> None:
    scenario = parse_scenario("name = 't'\n[evaluation]\ntarget_accuracy = 0.8")
    records = [record(1, 0.5), record(2, None), record(3, 0.85), record(4, 0.82)]
    s = summarize(scenario, records, wall_time_s=12.3456)
    assert (s.rounds_completed, s.final_accuracy, s.best_accuracy, s.best_round) == (4, 0.82, 0.85, 3)
    assert (s.round_reached_target, s.wall_time_s, s.status, s.error) == (3, 12.346, "completed", None)


def test_target_never_reached_is_null() -> None:
    scenario = parse_scenario("[evaluation]\ntarget_accuracy = 0.99")
    assert summarize(scenario, [record(1, 0.5)], 1.0).round_reached_target is None


def test_failed_run_keeps_its_rounds_and_says_why(tmp_path: Path) -> None:
    run = RunDirectory(tmp_path / "run", parse_scenario("name = 'x'"))
    run.append(record(1, 0.4))
    summary = run.finish(None, 2.0, error="round 2: boom")
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "failed"
    assert summary.error == "round 2: boom" and summary.rounds_completed == 1
    assert read_metrics(tmp_path / "run")[0]["accuracy"] == 0.4


def test_run_folder_files(tmp_path: Path) -> None:
    scenario = parse_scenario("name = 'x'\nrounds = 2")
    run = RunDirectory(tmp_path / "run", scenario)
    run.append(record(1, 0.4))
    run.append(record(2, 0.6))
    run.finish({"w": torch.ones(2)}, 3.0)
    out = tmp_path / "run"
    assert parse_scenario((out / "scenario.toml").read_text()) == scenario
    rows = read_metrics(out)
    assert [r["round"] for r in rows] == [1, 2] and rows[0]["round_time_s"] == 1.235
    assert torch.equal(torch.load(out / "model.pt")["w"], torch.ones(2))


def test_refuses_a_folder_that_holds_files(tmp_path: Path) -> None:
    (tmp_path / "old.txt").write_text("keep me")
    with pytest.raises(ScenarioError, match="already exists and is not empty"):
        RunDirectory(tmp_path, parse_scenario(""))
    assert (tmp_path / "old.txt").read_text() == "keep me"


def test_a_resumed_run_sums_the_same_simulated_time_as_one_that_ran_through(tmp_path: Path) -> None:
    """Rows are rounded to the millisecond on disk; a resumed run reads its first rows back from there."""
    scenario = parse_scenario("name = 'x'\nrounds = 3")
    rows = [dataclasses.replace(record(r, 0.5), simulated_time_s=1.0004) for r in (1, 2, 3)]
    whole = RunDirectory(tmp_path / "whole", scenario)
    for row in rows:
        whole.append(row)
    stopped = RunDirectory(tmp_path / "stopped", scenario)
    for row in rows[:2]:
        stopped.append(row)
    size = stopped.metrics_bytes
    stopped.close()  # the process ends (killed): a resume takes the folder over
    resumed = RunDirectory.reopen(tmp_path / "stopped", scenario, size, 2)
    resumed.append(rows[2])
    assert resumed.finish(None, 1.0).simulated_time_s == whole.finish(None, 1.0).simulated_time_s == 3.0


def test_a_resume_while_the_run_still_writes_its_folder_is_refused(tmp_path: Path) -> None:
    scenario = parse_scenario("name = 'x'\nrounds = 2")
    running = RunDirectory(tmp_path / "run", scenario)
    running.append(record(1, 0.4))
    size = running.metrics_bytes
    with pytest.raises(ScenarioError, match=f"in use by another fedsim process \\(pid {os.getpid()}\\)"):
        RunDirectory.reopen(tmp_path / "run", scenario, size, 1)
    running.finish(None, 1.0)  # the run ends: its lock goes
    RunDirectory.reopen(tmp_path / "run", scenario, size, 1).close()


def test_a_full_disk_leaves_the_previous_model_never_a_file_cut_short(tmp_path: Path) -> None:
    scenario = parse_scenario("name = 'x'\nrounds = 1")
    run = RunDirectory(tmp_path / "run", scenario)
    run.append(record(1, 0.4))
    size = run.metrics_bytes
    run.finish({"w": torch.ones(2)}, 1.0)
    model = (tmp_path / "run" / "model.pt").read_bytes()
    resumed = RunDirectory.reopen(tmp_path / "run", scenario, size, 1)
    with file_size_limit(1024), pytest.raises(OSError, match=r"model\.pt") as caught:
        resumed.finish({"w": torch.ones(10_000)}, 2.0)  # 40 kB: does not fit
    assert caught.value.filename == str(tmp_path / "run" / "model.pt")
    assert (tmp_path / "run" / "model.pt").read_bytes() == model
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())  # small enough to fit
    assert summary["status"] == "failed" and summary["error"].startswith("cannot write the model: ")
    assert sorted(p.name for p in (tmp_path / "run").iterdir() if p.name.endswith(".tmp")) == []


def test_a_disk_too_full_for_the_summary_keeps_the_previous_one(tmp_path: Path) -> None:
    scenario = parse_scenario("name = 'x'\nrounds = 1")
    run = RunDirectory(tmp_path / "run", scenario)
    run.append(record(1, 0.4))
    size = run.metrics_bytes
    run.finish(None, 1.0)
    summary = (tmp_path / "run" / "summary.json").read_bytes()
    resumed = RunDirectory.reopen(tmp_path / "run", scenario, size, 1)
    with file_size_limit(0), pytest.raises(OSError, match=r"summary\.json"):
        resumed.finish(None, 2.0, error="round 2: boom")
    assert (tmp_path / "run" / "summary.json").read_bytes() == summary
    RunDirectory.reopen(tmp_path / "run", scenario, size, 1).close()  # the folder was let go
