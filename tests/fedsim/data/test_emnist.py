"""EMNIST from IDX files in torchvision's layout: upright images, 0-based letters, each split's
own normalization."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fedsim.data import emnist
from fedsim.scenario import plugins, signatures
from fedsim.scenario.tables import ScenarioError
from tests.fedsim.data.formats import write_idx_set


def write(root: Path, split: str, labels: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Random images of the given labels, stored transposed as the EMNIST files are."""
    rng = np.random.default_rng(1)
    upright = {part: rng.integers(0, 256, (len(y), 28, 28), dtype=np.uint8) for part, y in labels.items()}
    stored = {part: np.ascontiguousarray(x.transpose(0, 2, 1)) for part, x in upright.items()}
    write_idx_set(root / "EMNIST" / "raw", emnist.images(split).files, stored, labels)
    return upright


def test_images_are_turned_upright(private_cache: Path, tmp_path: Path) -> None:
    upright = np.zeros((2, 28, 28), np.uint8)
    upright[0, 0, :] = 255  # a bar along the top row
    upright[1, :, 0] = 255  # a bar down the left column
    stored = np.ascontiguousarray(upright.transpose(0, 2, 1))  # as the EMNIST files hold them
    labels = {"train": np.array([0, 46], np.uint8), "test": np.array([1, 2], np.uint8)}
    write_idx_set(
        tmp_path / "EMNIST" / "raw",
        emnist.images("balanced").files,
        {"train": stored, "test": stored},
        labels,
    )
    loaded = emnist.load(tmp_path)
    x = loaded.train[0]
    assert loaded.num_classes == 47 and x.shape == (2, 1, 28, 28) and x.dtype == torch.float32
    assert torch.equal(x[:, 0] > x.min(), torch.from_numpy(upright > 0))
    assert torch.equal(loaded.test[0], x) and loaded.train[1].tolist() == [0, 46]


def test_letters_are_shifted_to_classes_from_zero(private_cache: Path, tmp_path: Path) -> None:
    write(
        tmp_path, "letters", {"train": np.array([1, 26, 13], np.uint8), "test": np.array([26, 1], np.uint8)}
    )
    loaded = emnist.load(tmp_path, split="letters")
    assert loaded.num_classes == 26
    assert loaded.train[1].tolist() == [0, 25, 12] and loaded.test[1].tolist() == [25, 0]


def test_normalized_with_the_training_pixels_mean_and_std(private_cache: Path, tmp_path: Path) -> None:
    write(tmp_path, "digits", {"train": np.arange(10, dtype=np.uint8), "test": np.array([3], np.uint8)})
    x, y = emnist.load(tmp_path, split="digits").train
    assert abs(float(x.double().mean())) < 1e-5 and abs(float(x.double().std(unbiased=False)) - 1) < 1e-5
    assert y.tolist() == list(range(10))


def test_an_unknown_split_names_the_key_and_the_splits() -> None:
    with pytest.raises(
        ScenarioError, match=r"^data\.params\.split: expected one of 'balanced', .*got 'kanji'$"
    ):
        signatures.bind(plugins.DATASET, "emnist", emnist.load, {"split": "kanji"})


def test_a_missing_file_is_named_with_the_fetch_command(private_cache: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as caught:
        emnist.load(tmp_path, split="byclass")
    assert str(caught.value) == (
        f"{tmp_path}/EMNIST/raw/emnist-byclass-train-images-idx3-ubyte(.gz) is missing "
        "(get it with: fedsim data fetch emnist)"
    )
