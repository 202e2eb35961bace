"""ProcessGroup with real processes: every PID it started, or that they started, is stopped."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
from pathlib import Path

import pytest

from fedsim.deploy import processes
from fedsim.deploy.processes import ProcessGroup, StartError, is_alive

# A parent like Flower's: one child that ignores SIGTERM, one detached into a session of its own.
FAMILY = textwrap.dedent(
    """
    import signal, subprocess, sys, time
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
    subprocess.Popen([sys.executable, "-c", stubborn])
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    print("ready", flush=True)
    time.sleep(600)
    """
)


@pytest.fixture(autouse=True)
def short_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(processes, "GRACE_S", 1.0)


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def start_family(group: ProcessGroup) -> set[int]:
    parent = group.start("family", python(FAMILY))
    group.wait_until(parent, lambda: "ready" in parent.log_tail(), timeout=60, what="start its children")
    group.wait_until(parent, lambda: len(group.pids()) == 3, timeout=60, what="show its children")
    return group.pids()


def test_stop_ends_children_that_ignore_sigterm_or_left_the_session(tmp_path: Path) -> None:
    group = ProcessGroup(os.environ, tmp_path)
    pids = start_family(group)
    assert all(is_alive(p) for p in pids)
    group.stop()
    assert not any(is_alive(p) for p in pids)


def test_leaving_the_with_block_by_ctrl_c_stops_everything(tmp_path: Path) -> None:
    pids: set[int] = set()
    with pytest.raises(KeyboardInterrupt), ProcessGroup(os.environ, tmp_path) as group:
        pids = start_family(group)
        raise KeyboardInterrupt
    assert len(pids) == 3 and not any(is_alive(p) for p in pids)


def test_a_process_that_exits_while_awaited_raises_with_its_log(tmp_path: Path) -> None:
    with ProcessGroup(os.environ, tmp_path) as group:
        failing = group.start("failing", python("print('bad certificate'); raise SystemExit(3)"))
        with pytest.raises(StartError, match="failing exited with code 3") as error:
            group.wait_until(failing, lambda: False, timeout=60, what="become ready")
        assert "bad certificate" in error.value.process.log_tail()


def test_short_commands_run_to_the_end_and_failures_name_the_command(tmp_path: Path) -> None:
    with ProcessGroup(os.environ, tmp_path) as group:
        group.run({"ok-1": python("pass"), "ok-2": python("pass")}, timeout=60)
        assert group.started == []  # finished and reaped: never signalled again
        with pytest.raises(StartError, match="register failed with exit code 2"):
            group.run({"register": python("raise SystemExit(2)")}, timeout=60)


def test_check_alive_names_the_process_that_died_and_can_ignore_one(tmp_path: Path) -> None:
    with ProcessGroup(os.environ, tmp_path) as group:
        done = group.start("done", python("pass"))
        done.popen.wait()
        group.check_alive(ignore=done)
        with pytest.raises(StartError, match="done exited with code 0"):
            group.check_alive()


def test_children_left_behind_by_a_process_that_already_exited_are_stopped(tmp_path: Path) -> None:
    """As a refused SuperNode leaves its SuperExec, which would write into a removed Flower home."""
    orphan = tmp_path / "orphan.pid"
    leaver = f"import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', {SLEEPER!r}]); "
    leaver += f"open({str(orphan)!r}, 'w').write(str(p.pid)); raise SystemExit(1)"
    group = ProcessGroup(os.environ, tmp_path)
    refused = group.start("refused", python(leaver))
    assert refused.popen.wait(60) == 1
    child = int(orphan.read_text())
    try:
        assert is_alive(child)
        group.stop()
        assert not is_alive(child)
    finally:
        if is_alive(child):  # only if the test failed
            os.kill(child, signal.SIGKILL)


SLEEPER = "import time; time.sleep(600)"
