"""The runnable projects of examples/, each run end to end on a few rounds."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example_module(folder: str, name: str) -> ModuleType:
    """``examples/<folder>/<name>.py`` imported as fedsim imports a plug-in: a top-level module
    found in its scenario's folder (so a run in this process uses this very module)."""
    path = str(EXAMPLES / folder)
    if path not in sys.path:
        sys.path.insert(0, path)
    return importlib.import_module(name)
