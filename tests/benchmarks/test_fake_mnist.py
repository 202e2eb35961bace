"""The stand-in MNIST the GPU machine trains on reads as MNIST does."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.fake_mnist import idx_bytes, write
from fedsim.data.idx import read_idx
from fedsim.data.mnist import has_mnist


def test_an_idx_header_is_zeros_the_type_the_rank_and_each_size() -> None:
    data = idx_bytes(np.arange(6, dtype=np.uint8).reshape(2, 3))
    assert data == bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 0, 1, 2, 3, 4, 5])


def test_the_files_have_mnists_names_and_shapes(tmp_path: Path) -> None:
    raw = write(tmp_path)
    assert has_mnist(tmp_path)
    assert read_idx(raw / "train-images-idx3-ubyte.gz").shape == (60_000, 28, 28)
    labels = read_idx(raw / "t10k-labels-idx1-ubyte.gz")
    assert labels.shape == (10_000,) and set(np.unique(labels)) == set(range(10))
