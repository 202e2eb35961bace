"""One run folder, one writer: ``RUN_DIR/.lock``, held with ``flock`` by the process writing it.

A run takes the lock when it creates its folder, a resume before it reads anything, and
both hold it until the results are written.  A second ``fedsim run --resume`` of the
folder, or one while the run is alive, is refused with the holder's pid (written into
the file) instead of both appending rows to ``metrics.jsonl``.  The kernel drops the lock
when the holder's process ends, however it ends (``kill -9`` included), so a stale lock
never blocks a resume; the file itself stays.  ``flock`` works between processes of one
machine: two machines writing one folder over NFS are not kept apart.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from fedsim.scenario.tables import ScenarioError

LOCK_FILE = ".lock"


class RunLock:
    """The held lock of one run folder; :meth:`release` (or the process ending) lets it go."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream

    @classmethod
    def take(cls, folder: Path, key: str) -> RunLock:
        """Lock ``folder``; ScenarioError naming ``key`` and the holder's pid if another process has it."""
        path = folder / LOCK_FILE
        try:
            # Held open: closing it lets the lock go.  Never through a link (fedsim/results/own_files.py).
            flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW
            stream = os.fdopen(os.open(path, flags, 0o644), "a+b")
        except OSError as error:
            raise ScenarioError(key, f"cannot lock {path}: {error.strerror}") from None
        try:
            fcntl.flock(stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(stream)
            stream.close()
            raise ScenarioError(
                key,
                f"{folder} is in use by another fedsim process{holder}, which writes it; "
                "wait for it to end or stop it",
            ) from None
        stream.truncate(0)
        stream.write(f"{os.getpid()}\n".encode())
        stream.flush()
        return cls(stream)

    def release(self) -> None:
        self._stream.close()  # closing the last descriptor of the open file drops the flock


def _holder(stream: IO[bytes]) -> str:
    """`` (pid N)`` as the holder wrote it; empty if it has not yet (it took the lock just now)."""
    stream.seek(0)
    text = stream.read(32).decode("ascii", "replace").strip()
    return f" (pid {text})" if text.isdigit() else ""
