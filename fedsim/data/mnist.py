"""MNIST (LeCun et al. 1998) from the original IDX files, read once into tensors.

The files are looked for as ``<root>/MNIST/raw/<name>`` or ``<name>.gz`` (the
layout torchvision uses) under each candidate root; absent everywhere, they are
downloaded with torchvision into the writable cache.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fedsim.config import ScenarioError
from fedsim.data.idx import read_idx
from fedsim.data.roots import cache_dir
from fedsim.data.shared import cached_array

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MEAN, STD = 0.1307, 0.3081  # of the training pixels, scaled to [0, 1]


def _file(root: Path, name: str) -> Path | None:
    for candidate in (root / "MNIST" / "raw" / name, root / "MNIST" / "raw" / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def has_mnist(root: Path) -> bool:
    return all(_file(root, name) for pair in FILES.values() for name in pair)


def locate(roots: list[Path], download: bool = True) -> Path:
    """The first root holding all four files; else download into the cache."""
    for root in roots:
        if has_mnist(root):
            return root
    searched = ", ".join(str(r / "MNIST" / "raw") for r in roots)
    if not download:
        raise ScenarioError("data.root", f"MNIST not found (searched {searched})")
    try:
        _download(cache_dir())
    except Exception as error:  # torchvision raises several kinds when offline
        raise ScenarioError(
            "data.root",
            f"MNIST not found (searched {searched}) and the download failed "
            f"({type(error).__name__}: {error}); pass --data-dir or set FEDSIM_DATA_DIR",
        ) from None
    return cache_dir()


def _download(root: Path) -> None:
    from torchvision.datasets import MNIST  # slow import, only needed here

    root.mkdir(parents=True, exist_ok=True)
    MNIST(root=str(root), train=True, download=True)


def load_split(root: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalized images (N, 1, 28, 28) float32 and labels (N,) int64.

    The images are shared by every process on the machine (fedsim/data/shared.py).
    """
    images_name, labels_name = FILES[split]
    images_path, labels_path = _existing(root, images_name), _existing(root, labels_name)
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


def _existing(root: Path, name: str) -> Path:
    path = _file(root, name)
    if path is None:
        raise ScenarioError("data.root", f"{root / 'MNIST' / 'raw' / name}: missing")
    return path
