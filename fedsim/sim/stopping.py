"""Ctrl-C and SIGTERM while a run or a comparison goes on: stop once cleanly, twice at once.

The first signal raises KeyboardInterrupt in the main thread, for SIGTERM too (``kill`` and
service managers send it): the round loop records why it stopped, the run folder is closed
with every finished round and its checkpoint, Ray shuts down, and the caller gets
``fedsim.Interrupted``.  That takes a few seconds, and waits on Ray's processes; a user who
presses Ctrl-C again wants out now.  So a second signal ends the process at once
(``os._exit``: no cleanup, no traceback), after one line on stderr.  Nothing committed is
lost: checkpoints and results are written to temporary files and renamed, and a resume cuts
a half-written ``metrics.jsonl`` row.  A private Ray cluster's processes die with the process
(the parent-death signal; fedsim/sim/reaper.py kills those that ignore it).

Exit codes follow the shell's: 128 + the signal's number (130 Ctrl-C, 143 SIGTERM).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)

_first: list[int] = []  # the signal that began the stop of the last handled block, if any
_at_once: list[bool] = [True]  # whether a second signal ends the process (see handled)


def exit_code(signum: int) -> int:
    """The shell's code for a process ended by ``signum``."""
    return 128 + signum


def received() -> int | None:
    """The signal that stopped the last :func:`handled` block (None: none did)."""
    return _first[0] if _first else None


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if _first and _at_once[0]:  # a second signal while the first one's stop is under way
        message = f"fedsim: {signal.Signals(signum).name} again: stopped at once; what was saved is kept\n"
        with contextlib.suppress(OSError):
            os.write(2, message.encode())
        os._exit(exit_code(signum))
    if not _first:
        _first.append(signum)
    raise KeyboardInterrupt


@contextlib.contextmanager
def handled(second_exits: bool = True) -> Iterator[None]:
    """Stop on SIGINT and SIGTERM as the module says while the block runs; the previous
    handlers after it.  A no-op outside the main thread (Python delivers signals there only)
    and inside another ``handled`` block (a comparison's runs share the comparison's).
    ``second_exits`` False: every signal raises KeyboardInterrupt (the deployment commands,
    whose Flower processes are stopped on the way out, not orphaned)."""
    if threading.current_thread() is not threading.main_thread() or _on_signal in map(
        signal.getsignal, SIGNALS
    ):
        yield
        return
    # A signal ignored when the process started stays ignored (a job started with `nohup ... &`).
    previous = {s: h for s in SIGNALS if (h := signal.getsignal(s)) != signal.SIG_IGN}
    _first.clear()
    _at_once[0] = second_exits
    for s in previous:
        signal.signal(s, _on_signal)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
