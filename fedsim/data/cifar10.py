"""CIFAR-10 (Krizhevsky 2009, "Learning Multiple Layers of Features from Tiny Images"):
60,000 32x32 colour images of 10 classes, 50,000 to train and 10,000 to test.

The built-in ``cifar10`` loader reads the "CIFAR-10 python version" of
https://www.cs.toronto.edu/~kriz/cifar.html as torchvision's ``datasets.CIFAR10`` unpacks
it: ``<root>/cifar-10-batches-py/data_batch_1`` .. ``data_batch_5`` and ``test_batch``, each
a pickled dict whose ``b"data"`` is uint8 (10000, 3072), one image a row (the red plane,
then green, then blue, each row by row), and ``b"labels"`` its classes.
"""

from __future__ import annotations

import functools
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fedsim.data.dataset import Dataset
from fedsim.data.roots import fetch_command, missing
from fedsim.data.shared import cached_array
from fedsim.scenario.tables import ScenarioError

FOLDER = "cifar-10-batches-py"
BATCHES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
SHAPE = (3, 32, 32)
# Of the training pixels scaled to [0, 1], per channel (red, green, blue).
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


def load(root: Path | None) -> Dataset:
    """Images (N, 3, 32, 32) float32 normalized per channel, and their classes."""
    train, test = (load_split(root, split) for split in ("train", "test"))
    return Dataset(train=train, test=test, num_classes=10)


def find_all(root: Path | None) -> list[Path]:
    """The six batch files, or FileNotFoundError naming the first one missing."""
    return [_find(root, name) for names in BATCHES.values() for name in names]


def _find(root: Path | None, name: str) -> Path:
    if root is None:
        raise missing(f"{FOLDER}/{name} under a data root (none exists)", fetch_command("cifar10"))
    path = root / FOLDER / name
    if not path.is_file():
        raise missing(str(path), fetch_command("cifar10"))
    return path


def load_split(root: Path | None, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One split's images and labels, shared by every process (fedsim/data/shared.py)."""
    paths = [_find(root, name) for name in BATCHES[split]]
    batches = functools.cache(lambda: [read_batch(p) for p in paths])  # unpickled once, on a cache miss
    x = cached_array(f"cifar10-{split}", paths, lambda: normalized(np.concatenate([b[0] for b in batches()])))
    y = cached_array(f"cifar10-{split}-labels", paths, lambda: np.concatenate([b[1] for b in batches()]))
    if len(x) != len(y):
        raise ScenarioError("data.root", f"{paths[0].parent}: {len(x)} {split} images but {len(y)} labels")
    return torch.from_numpy(x), torch.from_numpy(y)


def normalized(rows: np.ndarray) -> np.ndarray:
    """uint8 rows of 3072 values -> float32 (N, 3, 32, 32), each channel to mean 0 and std 1."""
    x = torch.from_numpy(rows.reshape(-1, *SHAPE).astype(np.float32)).div_(255)
    x.sub_(torch.tensor(MEAN).view(3, 1, 1)).div_(torch.tensor(STD).view(3, 1, 1))
    return x.numpy()


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A batch file's ``b"data"`` rows (uint8) and ``b"labels"`` (int64)."""
    try:
        batch = _Unpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
        data, labels = np.asarray(batch[b"data"]), np.asarray(batch[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as error:
        raise ScenarioError("data.root", f"{path}: not a CIFAR-10 python batch ({error})") from None
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise ScenarioError(
            "data.root", f"{path}: expected uint8 data (N, 3072) and N labels, got {data.dtype} {data.shape}"
        )
    return data, labels


class _Unpickler(pickle.Unpickler):
    """Builds only what a batch holds (dicts, lists, bytes, NumPy arrays): a shared data folder's
    pickle cannot run code."""

    ALLOWED = frozenset(
        {
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.numeric", "_frombuffer"),
            ("numpy._core.numeric", "_frombuffer"),
            ("_codecs", "encode"),  # bytes, as Python 3 writes them at protocol 2
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)
