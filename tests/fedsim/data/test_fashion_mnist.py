"""Fashion-MNIST from IDX files in torchvision's layout, normalized with its own statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fedsim.data import fashion_mnist
from fedsim.data.mnist import FILES
from tests.fedsim.data.formats import write_idx_set


def write(root: Path, gzipped: bool = False) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    images = {
        "train": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
        "test": np.zeros((2, 28, 28), np.uint8),
    }
    labels = {"train": np.array([0, 9, 3, 3, 1], np.uint8), "test": np.array([9, 0], np.uint8)}
    write_idx_set(root / "FashionMNIST" / "raw", FILES, images, labels, gzipped)
    return images


@pytest.mark.parametrize("gzipped", [False, True])
def test_reads_torchvisions_files_as_normalized_images(
    private_cache: Path, tmp_path: Path, gzipped: bool
) -> None:
    images = write(tmp_path, gzipped)
    loaded = fashion_mnist.load(tmp_path)
    (x, y), (x_test, y_test) = loaded.train, loaded.test
    assert loaded.num_classes == 10 and loaded.client_ids is None
    assert x.shape == (5, 1, 28, 28) and x.dtype == torch.float32 and x_test.shape == (2, 1, 28, 28)
    assert y.tolist() == [0, 9, 3, 3, 1] and y.dtype == torch.int64 and y_test.tolist() == [9, 0]
    expected = (images["train"].astype(np.float32) / 255 - fashion_mnist.MEAN) / fashion_mnist.STD
    np.testing.assert_allclose(x[:, 0].numpy(), expected, rtol=1e-6, atol=1e-6)
    assert torch.allclose(x_test, torch.tensor(-fashion_mnist.MEAN / fashion_mnist.STD))


def test_a_missing_file_is_named_with_the_fetch_command(private_cache: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as caught:
        fashion_mnist.load(tmp_path)
    assert str(caught.value) == (
        f"{tmp_path}/FashionMNIST/raw/train-images-idx3-ubyte(.gz) is missing "
        "(get it with: fedsim data fetch fashion_mnist)"
    )
