"""A private cluster's processes end with the process that started them (fedsim/sim/reaper.py)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import psutil

from fedsim.sim.reaper import Reaper
from tests.conftest import REPO

# A starter as `fedsim run` is to its Ray cluster: a child started while the "cluster" starts,
# with a child of its own that outlives it (as the raylet's agents outlived the raylet).
STARTER = textwrap.dedent(
    """
    import subprocess, sys, time
    import psutil
    from fedsim.sim.reaper import MARGIN_S, Reaper

    unrelated = subprocess.Popen(["sleep", "300"])  # not the cluster's: started well before it
    time.sleep(MARGIN_S + 1)
    began = time.time()
    code = "import subprocess, time; subprocess.Popen(['sleep', '300']); time.sleep(300)"
    root = subprocess.Popen([sys.executable, "-c", code])
    while not psutil.Process(root.pid).children():
        time.sleep(0.05)
    reaper = Reaper.start(began, time.time())
    print(unrelated.pid, root.pid, psutil.Process(root.pid).children()[0].pid, reaper.process.pid, flush=True)
    time.sleep(300)
    """
)


def ended(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE  # dead, its exit status not yet collected
    except psutil.NoSuchProcess:
        return True


def test_the_cluster_of_a_starter_killed_with_sigkill_is_killed_and_nothing_else() -> None:
    starter = subprocess.Popen([sys.executable, "-c", STARTER], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert starter.stdout is not None
    unrelated, root, grandchild, reaper = (psutil.Process(int(p)) for p in starter.stdout.readline().split())
    try:
        starter.send_signal(signal.SIGKILL)
        starter.wait()
        reaper.wait(timeout=120)  # it ends once it has killed the rest; the bound is against a hang
        assert ended(root) and ended(grandchild)
        assert unrelated.is_running() and not ended(unrelated)
    finally:
        for process in (unrelated, root, grandchild):
            if not ended(process):
                process.kill()


def test_a_closed_reaper_kills_what_the_shutdown_left_and_ends() -> None:
    began = time.time()
    leftover = subprocess.Popen(["sleep", "300"])  # an agent that ignored the shutdown
    reaper = Reaper.start(began, time.time())
    reaper.close()
    assert leftover.wait(timeout=60) == -signal.SIGKILL
    assert reaper.process.returncode == 0
