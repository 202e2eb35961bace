"""Image data sets in IDX files, in the layout torchvision writes: MNIST, Fashion-MNIST, EMNIST.

torchvision's ``datasets.MNIST`` (and its subclasses) keep the files as
``<root>/<Folder>/raw/<name>``, plain or gzipped (fedsim/data/idx.py reads both), the
folder being the class's name: ``MNIST``, ``FashionMNIST``, ``EMNIST``.  A missing file
raises FileNotFoundError naming it and ``fedsim data fetch NAME``, so the next data root
is tried (fedsim/data/__init__.py).

Images become normalized float32 tensors (N, 1, H, W) once per machine and are shared by
every process (fedsim/data/shared.py); the labels are small and read each time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fedsim.data.dataset import Dataset
from fedsim.data.idx import read_idx
from fedsim.data.roots import fetch_command, missing
from fedsim.data.shared import cached_array
from fedsim.scenario.tables import ScenarioError


@dataclass(frozen=True)
class IdxImages:
    """One IDX image set: where its files are and how its pixels are normalized."""

    name: str  # the built-in's name, as ``fedsim data fetch`` takes it
    folder: str  # under the data root: torchvision's class name
    files: Mapping[str, tuple[str, str]]  # "train" / "test" -> (images, labels) file names
    mean: float | None = None  # of the training pixels scaled to [0, 1]; None: computed from them
    std: float | None = None
    transposed: bool = False  # stored column by column (EMNIST): turned upright
    first_label: int = 0  # the smallest label in the files, shifted to class 0
    size: tuple[int, int] = (28, 28)  # of every image

    def dataset(self, root: Path | None, num_classes: int) -> Dataset:
        train, test = (self.load_split(root, split) for split in ("train", "test"))
        return Dataset(train=train, test=test, num_classes=num_classes)

    def find_file(self, root: Path | None, name: str) -> Path:
        """``root/<folder>/raw/name``, plain or gzipped; FileNotFoundError if neither is there."""
        raw = Path(self.folder) / "raw" / name
        if root is None:
            raise missing(f"{raw}(.gz) under a data root (none exists)", fetch_command(self.name))
        for candidate in (root / raw, root / f"{raw}.gz"):
            if candidate.is_file():
                return candidate
        raise missing(f"{root / raw}(.gz)", fetch_command(self.name))

    def find_all(self, root: Path | None) -> list[Path]:
        """Every file of the set, or FileNotFoundError for the first one missing."""
        return [self.find_file(root, name) for pair in self.files.values() for name in pair]

    def load_split(self, root: Path | None, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalized images (N, 1, H, W) float32 and labels (N,) int64."""
        images_name, labels_name = self.files[split]
        images_path, labels_path = self.find_file(root, images_name), self.find_file(root, labels_name)
        labels = read_idx(labels_path).astype(np.int64) - self.first_label
        mean, std = self._stats(root)

        def normalized() -> np.ndarray:
            images = read_idx(images_path)
            if images.shape[1:] != self.size:
                side = "x".join(map(str, self.size))
                raise ScenarioError("data.root", f"{images_path}: expected {side} images, got {images.shape}")
            if self.transposed:  # a view; the float copy below is laid out upright (order="C")
                images = images.transpose(0, 2, 1)
            x = torch.from_numpy(images.astype(np.float32, order="C"))
            return x.div_(255).sub_(mean).div_(std).unsqueeze(1).numpy()

        x = cached_array(f"{self.folder}-{images_name}", [images_path], normalized)
        if x.shape[0] != labels.shape[0]:
            raise ScenarioError(
                "data.root", f"{images_path}: {x.shape[0]} images but {labels.shape[0]} labels"
            )
        return torch.from_numpy(x), torch.from_numpy(labels)

    def _stats(self, root: Path | None) -> tuple[float, float]:
        """The given mean and std, else those of the training pixels (computed once per machine)."""
        if self.mean is not None and self.std is not None:
            return self.mean, self.std
        images_path = self.find_file(root, self.files["train"][0])
        stats = cached_array(
            f"{self.folder}-{images_path.name}-stats", [images_path], lambda: pixel_stats(images_path)
        )
        return float(stats[0]), float(stats[1])


def pixel_stats(path: Path) -> np.ndarray:
    """Mean and standard deviation of an IDX file's uint8 pixels scaled to [0, 1].

    From the counts of each of the 256 values: exact, and no float copy of the images.
    """
    counts = np.bincount(read_idx(path).ravel(), minlength=256).astype(np.float64)
    values = np.arange(256) / 255
    mean = counts @ values / counts.sum()
    return np.array([mean, np.sqrt(counts @ (values - mean) ** 2 / counts.sum())])
