"""One run folder, one writer (fedsim/results/runlock.py)."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest

from fedsim.results.runlock import LOCK_FILE, RunLock
from fedsim.scenario.tables import ScenarioError
from tests.conftest import another_process_locking


def test_a_folder_another_process_holds_is_refused_naming_its_pid(tmp_path: Path) -> None:
    with another_process_locking(tmp_path) as holder:
        with pytest.raises(
            ScenarioError, match=rf"^--resume: .* in use by another fedsim process \(pid {holder.pid}\)"
        ):
            RunLock.take(tmp_path, "--resume")
        assert (tmp_path / LOCK_FILE).read_text() == f"{holder.pid}\n"  # the refusal wrote nothing


def test_the_lock_goes_with_a_process_killed_with_sigkill(tmp_path: Path) -> None:
    with another_process_locking(tmp_path) as holder:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        lock = RunLock.take(tmp_path, "--resume")  # no stale lock to remove by hand
    assert (tmp_path / LOCK_FILE).read_text() == f"{os.getpid()}\n"
    lock.release()


def test_a_released_lock_can_be_taken_again_and_a_held_one_cannot(tmp_path: Path) -> None:
    first = RunLock.take(tmp_path, "--out")
    with pytest.raises(ScenarioError, match=rf"\(pid {os.getpid()}\)"):  # two writers in one process too
        RunLock.take(tmp_path, "--out")
    first.release()
    RunLock.take(tmp_path, "--out").release()


def test_a_folder_that_cannot_hold_the_lock_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(
        ScenarioError, match=f"^--resume: cannot lock {re.escape(str(tmp_path))}/file/.lock: Not a directory$"
    ):
        RunLock.take(tmp_path / "file", "--resume")
