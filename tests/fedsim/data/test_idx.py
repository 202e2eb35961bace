"""The IDX reader, on hand-made bytes and on the real MNIST files."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from fedsim.data.idx import IdxError, read_idx

# Label counts of digits 0..9, from shared/data/README.md (the published MNIST counts).
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_reads_a_hand_made_file(tmp_path: Path) -> None:
    # uint8, 2 dims: 2 x 3, values 1..6
    path = tmp_path / "tiny-idx2-ubyte"
    path.write_bytes(bytes([0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6]))
    assert read_idx(path).tolist() == [[1, 2, 3], [4, 5, 6]]


def test_reads_big_endian_int32_gzipped(tmp_path: Path) -> None:
    path = tmp_path / "ints.gz"
    path.write_bytes(gzip.compress(bytes([0, 0, 0x0C, 1, 0, 0, 0, 2, 0, 0, 1, 0, 0xFF, 0xFF, 0xFF, 0xFF])))
    assert read_idx(path).tolist() == [256, -1]


@pytest.mark.parametrize(
    "payload",
    [b"", b"\x01\x00\x08\x01", bytes([0, 0, 0x08, 1, 0, 0, 0, 5, 1, 2])],
    ids=["empty", "bad magic", "truncated"],
)
def test_rejects_malformed_files(tmp_path: Path, payload: bytes) -> None:
    path = tmp_path / "bad"
    path.write_bytes(payload)
    with pytest.raises(IdxError):
        read_idx(path)


def test_real_mnist_shapes_and_label_counts(data_dir: Path) -> None:
    raw = data_dir / "MNIST" / "raw"
    images = read_idx(raw / "train-images-idx3-ubyte.gz")
    labels = read_idx(raw / "train-labels-idx1-ubyte.gz")
    test_labels = read_idx(raw / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == TRAIN_COUNTS
    assert np.bincount(test_labels).tolist() == TEST_COUNTS
    assert round(float(images.mean()), 3) == 33.318  # from the data README
