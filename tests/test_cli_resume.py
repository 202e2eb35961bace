"""``fedsim run --resume``: what it refuses (exit 2, one line) and a run with nothing left to do."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from fedsim.cli import main
from fedsim.models.build import build_model
from fedsim.results import run_dir as results
from fedsim.results.records import RoundRecord
from fedsim.results.run_dir import RunDirectory
from fedsim.scenario.files import parse_scenario
from fedsim.scenario.sections import Scenario
from fedsim.sim import checkpoint as ckpt
from fedsim.sim.server import scenario_digest
from tests.conftest import another_process_locking

SCENARIO = """
name = "resumable"
rounds = 2
[data]
dataset = "synthetic"
partition = "natural"
[data.params]
devices = 3
[model]
name = "logreg"
"""


def one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("fedsim: error: --resume: "), err
    return err


def stopped_run(folder: Path, rounds_done: int) -> tuple[Scenario, dict[str, np.ndarray]]:
    """A run folder as a run killed after ``rounds_done`` rounds leaves it (no summary, no model)."""
    scenario = parse_scenario(SCENARIO)
    run = RunDirectory(folder, scenario)
    writer = ckpt.CheckpointWriter(folder)
    model = {
        k: v.numpy() + 1.0
        for k, v in build_model(scenario.model, (60,), 10, scenario.seed).state_dict().items()
    }
    for k in range(rounds_done + 1):
        if k:
            run.append(RoundRecord(k, 0.2 * k, 1.0, 1.0, None, None, 1, 0, 0.1, 0.1))
        state = ckpt.Checkpoint(
            k, model, {}, {}, ckpt.rng_state(), run.metrics_bytes, 2.0 * k, scenario_digest(folder)
        )
        writer.save(state)
    run.close()  # the process stops: its lock on the folder goes
    return scenario, model


def test_a_folder_without_a_run_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert "is not a run folder (no scenario.toml in it)" in one_line_error(
        capsys, ["run", "--resume", str(tmp_path)]
    )


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--set", "rounds=5"], "--set"),
        (["scenarios/quickstart.toml"], "SCENARIO"),
        (["--out", "x"], "--out"),
    ],
)
def test_a_resume_continues_the_scenario_unchanged(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, extra: list[str], named: str
) -> None:
    stopped_run(tmp_path / "run", 1)
    err = one_line_error(capsys, ["run", "--resume", str(tmp_path / "run"), *extra])
    assert f"continues RUN_DIR/scenario.toml as it is; drop {named}" in err


def test_a_run_stopped_before_its_first_checkpoint_cannot_resume(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    RunDirectory(tmp_path / "run", parse_scenario(SCENARIO)).close()
    assert "checkpoint.json: missing" in one_line_error(capsys, ["run", "--resume", str(tmp_path / "run")])


def test_an_edited_scenario_or_a_damaged_checkpoint_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    stopped_run(tmp_path / "edited", 1)
    toml = tmp_path / "edited" / "scenario.toml"
    toml.write_text(toml.read_text().replace("rounds = 2", "rounds = 3"))
    assert "changed since the checkpoint" in one_line_error(
        capsys, ["run", "--resume", str(tmp_path / "edited")]
    )

    stopped_run(tmp_path / "damaged", 1)
    (tmp_path / "damaged" / "checkpoint" / "round-000001.npz").write_bytes(b"PK\x03\x04 cut short")
    assert "unreadable or corrupt" in one_line_error(capsys, ["run", "--resume", str(tmp_path / "damaged")])


def test_a_run_killed_after_its_last_checkpoint_only_writes_its_results(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Every round is committed: no Ray, no client; the summary and the model are written."""
    folder = tmp_path / "run"
    _, model = stopped_run(folder, 2)
    assert main(["run", "--resume", str(folder)]) == 0
    assert "resuming " in capsys.readouterr().err
    summary = json.loads((folder / "summary.json").read_text())
    assert (summary["status"], summary["rounds_completed"], summary["final_accuracy"]) == (
        "completed",
        2,
        0.4,
    )
    assert summary["wall_time_s"] >= 4.0  # the earlier session's time counts
    saved = torch.load(folder / "model.pt")
    assert all(np.array_equal(saved[k].numpy(), model[k]) for k in model)


def test_a_resume_of_a_folder_in_use_is_refused_with_the_holders_pid(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Another resume (or the run itself) is writing it: refused before anything is read or cut."""
    folder = tmp_path / "run"
    stopped_run(folder, 2)
    metrics = (folder / "metrics.jsonl").read_bytes()
    with another_process_locking(folder) as holder:
        err = one_line_error(capsys, ["run", "--resume", str(folder)])
    assert f"is in use by another fedsim process (pid {holder.pid})" in err
    assert (folder / "metrics.jsonl").read_bytes() == metrics and not (folder / "summary.json").exists()


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES], ids=["full-disk", "no-permission"])
def test_results_that_cannot_be_written_give_one_line_naming_the_file(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, code: int
) -> None:
    folder = tmp_path / "run"
    stopped_run(folder, 2)

    def refused(path: Path, data: bytes) -> None:
        raise OSError(code, os.strerror(code), str(path))

    monkeypatch.setattr(results, "write_atomic", refused)
    assert main(["run", "--resume", str(folder)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == (
        f"fedsim: run failed: {folder / 'model.pt'}: {os.strerror(code)}; finished rounds are in "
        f"{folder} (fedsim run --resume {folder} goes on from the last one)"
    )
    assert not any(line.startswith("Traceback") for line in err)
