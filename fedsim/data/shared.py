"""Arrays held once per machine: built once, saved in the cache, memory-mapped by every process.

The server and every Ray worker load the same data set.  Kept in each process's own
memory, MNIST's normalized training images (188 MB) would be copied into every actor;
memory-mapped from one file, the operating system keeps a single copy in its page
cache and every process shares it.  The map is copy-on-write (``mmap_mode="c"``):
the arrays are writable, as torch expects, and a write stays private to its process.

The file is named after the sources' paths, sizes and modification times, so a changed
source builds a new one; it is written to a temporary name and renamed, so processes
starting together never read half a file.  Where the cache cannot be written the array
stays in the process's memory, as before.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from fedsim.data.roots import cache_dir

FORMAT = 1  # bump when what a builder computes changes, so old files are not reused


def cached_array(name: str, sources: Sequence[Path], build: Callable[[], np.ndarray]) -> np.ndarray:
    """``build()``'s array, memory-mapped from the cache once one process has saved it."""
    path = array_path(name, sources)
    try:
        return _mapped(path)
    except (OSError, ValueError):  # absent, or cut short by a crash: build it again
        pass
    array = np.ascontiguousarray(build())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        with partial.open("wb") as stream:
            np.save(stream, array)
        os.replace(partial, path)
        return _mapped(path)
    except OSError:  # a read-only or full cache: keep this process's copy
        return array


def _mapped(path: Path) -> np.ndarray:
    array: np.ndarray = np.load(path, mmap_mode="c")
    return array


def array_path(name: str, sources: Sequence[Path]) -> Path:
    digest = hashlib.sha256(f"{FORMAT}\n{name}".encode())
    for source in sources:
        stat = source.stat()
        digest.update(f"\n{source.resolve()}\n{stat.st_size}\n{stat.st_mtime_ns}".encode())
    return cache_dir() / "arrays" / f"{name}-{digest.hexdigest()[:20]}.npy"
