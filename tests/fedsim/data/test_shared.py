"""Arrays held once per machine: built once, memory-mapped after, rebuilt when broken or changed."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from fedsim.data import mnist, shared
from fedsim.data.idx import read_idx


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "fedsim" / "arrays"


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "source.bin"
    path.write_bytes(b"data")
    return path


def test_built_once_then_memory_mapped(cache: Path, source: Path) -> None:
    calls: list[int] = []

    def build() -> np.ndarray:
        calls.append(1)
        return np.arange(12, dtype=np.float32).reshape(3, 4)

    first = shared.cached_array("a", [source], build)
    second = shared.cached_array("a", [source], build)
    assert calls == [1]
    assert isinstance(second, np.memmap) and second.flags.writeable  # torch takes it without a copy
    np.testing.assert_array_equal(first, second)
    assert [p.suffix for p in cache.iterdir()] == [".npy"]  # no partial file left


def test_a_write_stays_in_its_process(cache: Path, source: Path) -> None:
    array = shared.cached_array("a", [source], lambda: np.zeros(4, np.float32))
    array[0] = 7  # copy-on-write: the file, which other processes map, is unchanged
    assert shared.cached_array("a", [source], lambda: np.ones(4, np.float32))[0] == 0


def test_a_changed_source_or_a_cut_file_builds_again(cache: Path, source: Path) -> None:
    shared.cached_array("a", [source], lambda: np.zeros(4, np.float32))
    os.utime(source, ns=(1, 1))
    assert shared.cached_array("a", [source], lambda: np.ones(4, np.float32))[0] == 1
    path = shared.array_path("a", [source])
    path.write_bytes(path.read_bytes()[:-8])  # a crash mid-write, by a writer without rename
    assert len(shared.cached_array("a", [source], lambda: np.full(4, 2, np.float32))) == 4


def test_an_unwritable_cache_keeps_the_array_in_memory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, source: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # a file where the folder would go
    array = shared.cached_array("a", [source], lambda: np.arange(3, dtype=np.int64))
    assert not isinstance(array, np.memmap)
    np.testing.assert_array_equal(array, [0, 1, 2])


def test_mnist_from_the_cache_is_bitwise_the_uncached_computation(cache: Path, data_dir: Path) -> None:
    images = read_idx(data_dir / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz")
    expected = torch.from_numpy(images.astype(np.float32)).div_(255).sub_(mnist.MEAN).div_(mnist.STD)
    built, _ = mnist.load_split(data_dir, "test")  # the first load builds the file
    mapped, labels = mnist.load_split(data_dir, "test")
    assert len(list(cache.iterdir())) == 1
    assert torch.equal(built, expected.unsqueeze(1)) and torch.equal(mapped, built)
    assert labels.dtype == torch.int64 and len(labels) == 10_000
