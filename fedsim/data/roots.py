"""Where data sets are looked for, in order, and where downloads go.

1. ``--data-dir`` (or a SuperNode's ``data-dir`` node config), 2. ``data.root`` in
the scenario, 3. ``$FEDSIM_DATA_DIR``, 4. the user cache (``$XDG_CACHE_HOME/fedsim``).
A run writes only to the cache: a data root may be read-only and shared.  ``fedsim data
fetch`` (fedsim/data/fetch.py) downloads into the first of these it may write to.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_DATA_DIR = "FEDSIM_DATA_DIR"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "fedsim"


def candidate_roots(data_dir: str | None = None, scenario_root: str | None = None) -> list[Path]:
    env = os.environ.get(ENV_DATA_DIR)
    found = [Path(p).expanduser() for p in (data_dir, scenario_root, env) if p]
    return [*found, cache_dir()]


def missing(what: str, how: str) -> FileNotFoundError:
    """A built-in loader's missing file, saying how to get it: the next data root is tried,
    and :func:`fedsim.data.find_federated` shows this message when none has the file.

    One argument, no ``filename``: the message is shown as it is.
    """
    return FileNotFoundError(f"{what} is missing (get it with: {how})")


def fetch_command(name: str) -> str:
    return f"fedsim data fetch {name}"
