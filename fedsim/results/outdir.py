"""Output folders checked before a command does its work: ``compare`` would otherwise run every
variant and only then fail to write its table; ``plot`` and ``certs`` failed with a traceback."""

from __future__ import annotations

import tempfile
from pathlib import Path

from fedsim.scenario.tables import ScenarioError


def check_writable(folder: Path, key: str) -> None:
    """Create ``folder`` if need be and write (and delete) a file in it; ScenarioError naming ``key``
    and the reason if that fails: a path under a file, a read-only disk, no permission."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ScenarioError(key, f"cannot write to {folder} ({reason})") from None


def check_new(folder: Path, key: str) -> None:
    """As :func:`check_writable`, for a folder that must be new or empty (a run's, a comparison's)."""
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ScenarioError(key, f"{folder} already exists and is not empty; choose another folder")
    check_writable(folder, key)
