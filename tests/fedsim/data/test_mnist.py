"""Finding MNIST: search order, read-only roots, clear errors offline."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from fedsim.data import find_federated, mnist
from fedsim.data.roots import candidate_roots
from fedsim.scenario.sections import DataConfig
from fedsim.scenario.tables import ScenarioError


def test_search_order_is_option_scenario_env_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FEDSIM_DATA_DIR", "/env")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert candidate_roots("/opt", "/scn") == [Path("/opt"), Path("/scn"), Path("/env"), tmp_path / "fedsim"]
    monkeypatch.delenv("FEDSIM_DATA_DIR")
    assert candidate_roots(None, None) == [tmp_path / "fedsim"]


def test_first_root_with_all_files_wins(tmp_path: Path, data_dir: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    spec = DataConfig(dataset="mnist", root=str(data_dir))
    assert find_federated(spec, 0, str(empty))[1] == data_dir


def test_missing_everywhere_names_the_folders_searched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FEDSIM_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "a").mkdir()
    with pytest.raises(ScenarioError) as caught:
        find_federated(DataConfig(dataset="mnist", root=str(tmp_path / "b")), 0, str(tmp_path / "a"))
    message = str(caught.value)
    assert message.startswith(f"data.root: 'mnist' found no data (searched {tmp_path / 'a'}): ")
    assert str(tmp_path / "a" / "MNIST" / "raw" / "train-images-idx3-ubyte") in message
    assert "(get it with: fedsim data fetch mnist)" in message


def test_mnist_is_ten_classes_of_one_channel_images(data_dir: Path) -> None:
    loaded = mnist.load(data_dir)
    assert loaded.num_classes == 10 and loaded.client_ids is None
    assert loaded.train[0].shape == (60000, 1, 28, 28) and loaded.test[1].shape == (10000,)


def test_reads_gzipped_and_plain_files_alike_without_writing(tmp_path: Path, data_dir: Path) -> None:
    plain = tmp_path / "plain"
    shutil.copytree(data_dir / "MNIST", plain / "MNIST")
    for gz in (plain / "MNIST" / "raw").glob("t10k-*.gz"):
        import gzip

        gz.with_suffix("").write_bytes(gzip.decompress(gz.read_bytes()))
        gz.unlink()
    before = sorted(p.name for p in (data_dir / "MNIST" / "raw").iterdir())
    x_gz, y_gz = mnist.load_split(data_dir, "test")
    x_raw, y_raw = mnist.load_split(plain, "test")
    assert torch.equal(x_gz, x_raw) and torch.equal(y_gz, y_raw)
    assert x_gz.shape == (10000, 1, 28, 28) and x_gz.dtype == torch.float32
    assert abs(float(x_gz.mean()) - (0.1325 - mnist.MEAN) / mnist.STD) < 1e-3  # test mean 0.1325
    assert sorted(p.name for p in (data_dir / "MNIST" / "raw").iterdir()) == before
