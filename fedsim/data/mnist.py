"""MNIST (LeCun et al. 1998) from the original IDX files, read once into tensors.

The built-in ``mnist`` loader: the files are read as ``<root>/MNIST/raw/<name>`` or
``<name>.gz``, the layout torchvision writes.  Missing, they raise FileNotFoundError,
so the next data root is tried (fedsim/data/__init__.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fedsim.config import ScenarioError
from fedsim.data.dataset import Dataset
from fedsim.data.idx import read_idx
from fedsim.data.roots import candidate_roots
from fedsim.data.shared import cached_array

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MEAN, STD = 0.1307, 0.3081  # of the training pixels, scaled to [0, 1]


def load(root: Path | None) -> Dataset:
    """Normalized 1x28x28 images and their digits, 60,000 to train and 10,000 to test."""
    train, test = (load_split(_root(root), split) for split in ("train", "test"))
    return Dataset(train=train, test=test, num_classes=10)


def _root(root: Path | None) -> Path:
    if root is None:
        raise FileNotFoundError("MNIST/raw/train-images-idx3-ubyte is missing (no data root)")
    return root


def find_file(root: Path, name: str) -> Path:
    """``root/MNIST/raw/name``, plain or gzipped; FileNotFoundError if neither is there."""
    for candidate in (root / "MNIST" / "raw" / name, root / "MNIST" / "raw" / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{root / 'MNIST' / 'raw' / name}(.gz) is missing")


def locate(data_dir: str | None = None) -> Path:
    """The first data root holding MNIST (fedsim/data/roots.py), for tools that read its files."""
    roots = candidate_roots(data_dir)
    for root in roots:
        if has_mnist(root):
            return root
    raise ScenarioError("data.root", f"MNIST not found under {', '.join(map(str, roots))}")


def has_mnist(root: Path) -> bool:
    try:
        return all(find_file(root, name) for pair in FILES.values() for name in pair)
    except FileNotFoundError:
        return False


def load_split(root: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalized images (N, 1, 28, 28) float32 and labels (N,) int64.

    The images are shared by every process on the machine (fedsim/data/shared.py).
    """
    images_name, labels_name = FILES[split]
    images_path, labels_path = find_file(root, images_name), find_file(root, labels_name)
    labels = read_idx(labels_path)

    def normalized() -> np.ndarray:
        images = read_idx(images_path)
        if images.shape[1:] != (28, 28):
            raise ScenarioError("data.root", f"{root}: MNIST {split} images are not 28x28")
        x = torch.from_numpy(images.astype(np.float32)).div_(255).sub_(MEAN).div_(STD).unsqueeze(1)
        return x.numpy()

    x = cached_array(f"mnist-{split}", [images_path], normalized)
    if x.shape[0] != labels.shape[0] or x.shape[1:] != (1, 28, 28):
        raise ScenarioError("data.root", f"{root}: MNIST {split} files do not match")
    return torch.from_numpy(x), torch.from_numpy(labels.astype(np.int64))
