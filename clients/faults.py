"""Act out the fault the server's plan names in a train message (``[faults]``).

The server decides from the seed (strategies/plan.py) and tells the client, so the
server knows what it asked for and a re-run injects the same faults.  Dropouts are
the server's to simulate (it never sends the message); here are the other two.
"""

from __future__ import annotations

import os
import sys

CRASH_EXIT_CODE = 75  # any nonzero code; the server sees only that the process is gone


class InjectedFailure(RuntimeError):
    """Raised by a client told to fail: Flower answers the server with an error reply."""


def act_out(fault: str) -> None:
    """Raise or end the process as ``fault`` says; nothing for ``""``."""
    if fault == "fail":
        raise InjectedFailure("injected failure (faults.failure_rate)")
    if fault == "crash":
        # As a segfault or a kill would: no exception, no clean-up.  In simulation the Ray
        # actor dies and Ray starts a new one (engine.py sets max_restarts).
        sys.stderr.flush()
        os._exit(CRASH_EXIT_CODE)
    if fault:
        raise ValueError(f"unknown fault {fault!r}")
