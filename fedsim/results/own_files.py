"""A run folder to go on with is read as untrusted: only its own plain files and folders.

A run folder is data users copy, share and unpack from others.  A resume reads it, appends
to ``metrics.jsonl``, replaces the checkpoint's files and deletes the old ones: through a
symbolic link that would read, write or delete files anywhere (``checkpoint/clients`` as a
link to a home folder once had every file there deleted).  So before a resume opens
anything, :func:`refuse_links` walks the folder and refuses a link or a special file (a
FIFO, a socket, a device) anywhere inside it, naming the path.  The folder itself may be
given through a link: the user chose that path.  The checkpoint's own record names only
files inside the folder (fedsim/sim/checkpoint.py).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from fedsim.scenario.tables import ScenarioError


def refuse_links(folder: Path, key: str) -> None:
    """ScenarioError naming ``key`` and the first path inside ``folder`` that is not a plain
    file or folder of its own."""

    def unreadable(error: OSError) -> None:
        raise ScenarioError(key, f"cannot read {error.filename}: {error.strerror}")

    for root, folders, files in os.walk(folder, onerror=unreadable):  # never into a link
        for name in sorted([*folders, *files]):
            path = Path(root, name)
            kind = _kind(path.lstat().st_mode)
            if kind:
                raise ScenarioError(
                    key,
                    f"{path} is {kind}; a run folder may hold only its own files and folders "
                    "(nothing is read, written or deleted through it)",
                )


def _kind(mode: int) -> str:
    """What a path that is not a plain file or folder is; "" for those."""
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return ""
    return "a special file (FIFO, socket or device)"
