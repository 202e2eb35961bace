"""CIFAR-10 from the python batches as the CIFAR site and torchvision write them."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from fedsim.data import cifar10
from fedsim.scenario.tables import ScenarioError

SIZES = {
    "data_batch_1": 3,
    "data_batch_2": 2,
    "data_batch_3": 1,
    "data_batch_4": 1,
    "data_batch_5": 2,
    "test_batch": 2,
}


def write_batch(path: Path, data: np.ndarray, labels: list[int], protocol: int = 2) -> None:
    """A batch as the CIFAR site's files hold it: a dict with bytes keys (written by Python 2)."""
    batch = {
        b"batch_label": b"testing",
        b"labels": labels,
        b"data": data,
        b"filenames": [b"x.png"] * len(labels),
    }
    path.write_bytes(pickle.dumps(batch, protocol=protocol))


def write(root: Path, protocol: int = 2) -> dict[str, np.ndarray]:
    folder = root / cifar10.FOLDER
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    written = {}
    for i, (name, n) in enumerate(SIZES.items()):
        written[name] = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        write_batch(folder / name, written[name], [(i + j) % 10 for j in range(n)], protocol)
    return written


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_batches_become_normalized_colour_images(private_cache: Path, tmp_path: Path, protocol: int) -> None:
    written = write(tmp_path, protocol)
    loaded = cifar10.load(tmp_path)
    (x, y), (x_test, y_test) = loaded.train, loaded.test
    assert loaded.num_classes == 10
    assert x.shape == (9, 3, 32, 32) and x.dtype == torch.float32 and x_test.shape == (2, 3, 32, 32)
    assert y.dtype == torch.int64 and y.tolist() == [0, 1, 2, 1, 2, 2, 3, 4, 5] and y_test.tolist() == [5, 6]
    # Batches in order; a row is the red plane, then green, then blue, each row by row.
    rows = np.concatenate([written[f"data_batch_{i}"] for i in range(1, 6)])
    pixels = rows.reshape(9, 3, 32, 32).astype(np.float32) / 255
    expected = (pixels - np.array(cifar10.MEAN, np.float32)[:, None, None]) / np.array(
        cifar10.STD, np.float32
    )[:, None, None]
    np.testing.assert_allclose(x.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_the_first_third_of_a_row_is_the_red_plane(private_cache: Path, tmp_path: Path) -> None:
    write(tmp_path)
    data = np.zeros((1, 3072), np.uint8)
    data[0, :1024] = 255  # red everywhere, no green, no blue
    write_batch(tmp_path / cifar10.FOLDER / "test_batch", data, [7])
    x, y = cifar10.load(tmp_path).test
    red, green, blue = (x[0, c].unique().tolist() for c in range(3))
    assert red == pytest.approx([(1 - cifar10.MEAN[0]) / cifar10.STD[0]])
    assert green == pytest.approx([-cifar10.MEAN[1] / cifar10.STD[1]])
    assert blue == pytest.approx([-cifar10.MEAN[2] / cifar10.STD[2]]) and y.tolist() == [7]


def test_a_pickle_that_would_run_code_is_refused(private_cache: Path, tmp_path: Path) -> None:
    class Payload:
        def __reduce__(self) -> tuple[object, tuple[()]]:
            return (os.getcwd, ())

    write(tmp_path)
    (tmp_path / cifar10.FOLDER / "test_batch").write_bytes(pickle.dumps({b"data": Payload(), b"labels": []}))
    refused = rf"test_batch: not a CIFAR-10 python batch \(refusing to load {os.getcwd.__module__}\.getcwd\)"
    with pytest.raises(ScenarioError, match=refused):
        cifar10.load(tmp_path)


def test_a_missing_batch_is_named_with_the_fetch_command(private_cache: Path, tmp_path: Path) -> None:
    write(tmp_path)
    (tmp_path / cifar10.FOLDER / "data_batch_4").unlink()
    with pytest.raises(FileNotFoundError) as caught:
        cifar10.load(tmp_path)
    assert str(caught.value) == (
        f"{tmp_path}/{cifar10.FOLDER}/data_batch_4 is missing (get it with: fedsim data fetch cifar10)"
    )
