"""Fashion-MNIST (Xiao, Rasul and Vollgraf 2017, "Fashion-MNIST: a Novel Image Dataset for
Benchmarking Machine Learning Algorithms", arXiv:1708.07747): Zalando's article images, a
drop-in for MNIST with the same IDX files, sizes and splits.

The built-in ``fashion_mnist`` loader reads ``<root>/FashionMNIST/raw/<name>[.gz]``, the
layout torchvision's ``datasets.FashionMNIST`` writes (fedsim/data/idx_images.py).
"""

from __future__ import annotations

from pathlib import Path

from fedsim.data.dataset import Dataset
from fedsim.data.idx_images import IdxImages
from fedsim.data.mnist import FILES

MEAN, STD = 0.2860, 0.3530  # of the training pixels, scaled to [0, 1]
FASHION_MNIST = IdxImages("fashion_mnist", "FashionMNIST", FILES, MEAN, STD)


def load(root: Path | None) -> Dataset:
    """Normalized 1x28x28 images of 10 kinds of clothing, 60,000 to train and 10,000 to test."""
    return FASHION_MNIST.dataset(root, num_classes=10)
