"""MNIST (LeCun et al. 1998, "Gradient-Based Learning Applied to Document Recognition") from
the original IDX files, read once into tensors.

The built-in ``mnist`` loader: the files are read as ``<root>/MNIST/raw/<name>`` or
``<name>.gz``, the layout torchvision writes (fedsim/data/idx_images.py).  Missing, they
raise FileNotFoundError, so the next data root is tried (fedsim/data/__init__.py).
"""

from __future__ import annotations

from pathlib import Path

import torch

from fedsim.data.dataset import Dataset
from fedsim.data.idx_images import IdxImages
from fedsim.data.roots import candidate_roots
from fedsim.scenario.tables import ScenarioError

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MEAN, STD = 0.1307, 0.3081  # of the training pixels, scaled to [0, 1]
MNIST = IdxImages("mnist", "MNIST", FILES, MEAN, STD)


def load(root: Path | None) -> Dataset:
    """Normalized 1x28x28 images and their digits, 60,000 to train and 10,000 to test."""
    return MNIST.dataset(root, num_classes=10)


def find_file(root: Path, name: str) -> Path:
    """``root/MNIST/raw/name``, plain or gzipped; FileNotFoundError if neither is there."""
    return MNIST.find_file(root, name)


def locate(data_dir: str | None = None) -> Path:
    """The first data root holding MNIST (fedsim/data/roots.py), for tools that read its files."""
    roots = candidate_roots(data_dir)
    for root in roots:
        if has_mnist(root):
            return root
    raise ScenarioError("data.root", f"MNIST not found under {', '.join(map(str, roots))}")


def has_mnist(root: Path) -> bool:
    try:
        return bool(MNIST.find_all(root))
    except FileNotFoundError:
        return False


def load_split(root: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalized images (N, 1, 28, 28) float32 and labels (N,) int64, shared by every process."""
    return MNIST.load_split(root, split)
