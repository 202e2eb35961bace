"""Nothing of a private Ray cluster outlives the process that started it, ``kill -9`` included.

Ray's GCS and raylet get the parent-death signal (fedsim/sim/cluster.py keeps the thread that
started them alive), and the client workers die with the raylet.  The raylet's dashboard
and runtime-env agents do not: killed with SIGKILL, ``fedsim run`` left them running for a
minute or more (they try to tell the GCS, gone too, that the raylet died).  So with each
private cluster a small watcher process starts, in a session of its own (Ctrl-C in the
terminal does not reach it).  Every :data:`POLL_S` it notes the cluster's processes: the
starter's children created while Ray started, and all of theirs.  When its pipe from the
starter closes (the cluster was shut down, or the starter died, however it died), it kills
those still running and ends; after a clean shutdown it finds none.
"""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import sys
from dataclasses import dataclass

import psutil

POLL_S = 2.0  # between looks for processes Ray started since (the agents come after the raylet)
MARGIN_S = 1.0  # around Ray's start: process start times are kept to the clock tick


@dataclass(frozen=True)
class Reaper:
    """The watcher of one cluster; :meth:`close` once the cluster is shut down."""

    process: subprocess.Popen[bytes]

    @classmethod
    def start(cls, began: float, ended: float) -> Reaper:
        """Watch the children this process created between ``began`` and ``ended`` (time.time());
        returns once the watcher has noted those running now."""
        command = [sys.executable, "-m", "fedsim.sim.reaper", str(os.getpid()), repr(began), repr(ended)]
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        assert process.stdout is not None
        process.stdout.readline()  # its first look is done (or it failed: then it says nothing)
        process.stdout.close()
        return cls(process)

    def close(self) -> None:
        """Let the watcher kill what is left of the cluster (normally nothing) and end."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=30)


def cluster_processes(starter: int, began: float, ended: float) -> dict[int, float]:
    """pid -> start time of ``starter``'s children created in [began, ended] and their descendants."""
    found: dict[int, float] = {}
    with contextlib.suppress(psutil.Error):  # the starter is gone: keep what was seen before
        for root in psutil.Process(starter).children():
            with contextlib.suppress(psutil.Error):
                if began - MARGIN_S <= root.create_time() <= ended + MARGIN_S:
                    for process in (root, *root.children(recursive=True)):
                        found[process.pid] = process.create_time()
    found.pop(os.getpid(), None)  # the watcher is the starter's child too
    return found


def kill(known: dict[int, float]) -> None:
    """SIGKILL each process still running with the start time it had (not a reused pid)."""
    for pid, created in known.items():
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(pid)
            if process.create_time() == created:
                process.kill()


def main(starter: int, began: float, ended: float) -> None:
    known = cluster_processes(starter, began, ended)
    print("watching", flush=True)  # Reaper.start returns: a kill from now on finds them noted
    sys.stdout.close()
    while True:
        ready, _, _ = select.select([sys.stdin], [], [], POLL_S)
        if ready and not os.read(sys.stdin.fileno(), 4096):  # end of file: shut down, or the starter died
            break
        known.update(cluster_processes(starter, began, ended))
    kill(known)


if __name__ == "__main__":
    main(int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]))
