"""``fedsim data fetch NAME`` and ``fedsim data list``: getting the built-in data sets' files.

MNIST, Fashion-MNIST, EMNIST and CIFAR-10 are downloaded by torchvision's own data set
classes (``download=True``), which write exactly the layout the loaders read
(fedsim/data/idx_images.py, fedsim/data/cifar10.py).  FEMNIST has no download: LEAF's
preprocessing makes its files (fedsim/data/femnist.py), and fetching it says how.

Files go into the first folder fedsim may write to among ``--data-dir``,
``$FEDSIM_DATA_DIR`` and the user cache (fedsim/data/roots.py), never into a read-only
one; a data set already in a root a run would search is not downloaded again.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedsim.data import cifar10, emnist, femnist
from fedsim.data.fashion_mnist import FASHION_MNIST
from fedsim.data.mnist import MNIST
from fedsim.data.roots import candidate_roots
from fedsim.scenario.tables import ScenarioError, suggest

KEY = "data fetch"


@dataclass(frozen=True)
class Source:
    """Where a built-in data set's files go, and what downloads them."""

    find: Callable[[Path], object]  # raises FileNotFoundError while a file is missing
    folder: str  # under the root, where the files go
    torchvision: str | None = None  # the class of torchvision.datasets that downloads it
    options: Mapping[str, Any] = field(default_factory=dict)  # its keyword arguments


def _leaf_files(root: Path) -> object:
    return [femnist.find_files(root, split) for split in ("train", "test")]


SOURCES: dict[str, Source] = {
    "mnist": Source(MNIST.find_all, "MNIST/raw", "MNIST"),
    "fashion_mnist": Source(FASHION_MNIST.find_all, "FashionMNIST/raw", "FashionMNIST"),
    # torchvision downloads every split in one archive; the default split says whether it is here
    "emnist": Source(emnist.images("balanced").find_all, "EMNIST/raw", "EMNIST", {"split": "balanced"}),
    "cifar10": Source(cifar10.find_all, cifar10.FOLDER, "CIFAR10"),
    "femnist": Source(_leaf_files, str(femnist.FOLDER)),
}


class FetchFailed(Exception):
    """The download failed (offline, a server down): one line saying where the files must go."""


def fetch(name: str, data_dir: str | None = None) -> tuple[Path, bool]:
    """Download ``name`` unless a data root has it: the root it is in, and whether it was downloaded."""
    source = source_of(name)
    found = where(name, data_dir)
    if found is not None:
        return found, False
    if source.torchvision is None:
        raise ScenarioError(KEY, f"{name} cannot be downloaded; make its files with {femnist.HOW}")
    root = destination(data_dir)
    try:
        download(source, root)
        source.find(root)  # torchvision wrote the files the loader reads
    except Exception as error:
        raise FetchFailed(
            f"downloading {name} failed ({_reason(error)}); offline, copy its files, as "
            f"torchvision.datasets.{source.torchvision} writes them, into {root / source.folder}"
        ) from error
    return root, True


def source_of(name: str) -> Source:
    if name not in SOURCES:
        raise ScenarioError(KEY, f"unknown data set {name!r}{suggest(name, SOURCES)}")
    return SOURCES[name]


def where(name: str, data_dir: str | None = None) -> Path | None:
    """The first data root a run would search that holds all of ``name``'s files; None if none does."""
    for root in candidate_roots(data_dir):
        with contextlib.suppress(FileNotFoundError):
            SOURCES[name].find(root)
            return root
    return None


def destination(data_dir: str | None) -> Path:
    """``data_dir`` if given, else the first of ``$FEDSIM_DATA_DIR`` and the cache fedsim may write to."""
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        if not writable(root):
            raise ScenarioError("--data-dir", f"{root} is not a folder fedsim may write to")
        return root
    roots = candidate_roots()
    for root in roots:
        if writable(root):
            return root
    raise ScenarioError(
        "--data-dir", f"none of {', '.join(map(str, roots))} may be written to: pass a folder"
    )


def writable(path: Path) -> bool:
    """Whether ``path`` is, or could be made as, a folder this process may write in."""
    existing = path.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return existing.is_dir() and os.access(existing, os.W_OK | os.X_OK)


def download(source: Source, root: Path) -> None:
    """torchvision's downloader, into ``root`` (it skips files already there and checks their MD5)."""
    from torchvision import datasets

    getattr(datasets, str(source.torchvision))(str(root), train=True, download=True, **source.options)


def _reason(error: BaseException) -> str:
    """One line: torchvision's message lists each mirror tried on lines of its own."""
    return " ".join(f"{type(error).__name__}: {error}".split())


def listing(data_dir: str | None = None) -> list[tuple[str, str]]:
    """Each fetchable data set and the root holding it, or how to get it."""
    rows = []
    for name, source in SOURCES.items():
        found = where(name, data_dir)
        how = f"fedsim data fetch {name}" if source.torchvision else femnist.HOW
        rows.append((name, str(found) if found else f"missing: {how}"))
    return rows
