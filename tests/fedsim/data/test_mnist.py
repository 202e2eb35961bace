"""Finding MNIST: search order, read-only roots, clear errors offline."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from fedsim.config import ScenarioError
from fedsim.data import mnist
from fedsim.data.roots import candidate_roots


def test_search_order_is_option_scenario_env_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FEDSIM_DATA_DIR", "/env")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert candidate_roots("/opt", "/scn") == [Path("/opt"), Path("/scn"), Path("/env"), tmp_path / "fedsim"]
    monkeypatch.delenv("FEDSIM_DATA_DIR")
    assert candidate_roots(None, None) == [tmp_path / "fedsim"]


def test_first_root_with_all_files_wins(tmp_path: Path, data_dir: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert mnist.locate([empty, data_dir], download=False) == data_dir


def test_missing_everywhere_names_the_folders_searched(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as caught:
        mnist.locate([tmp_path / "a", tmp_path / "b"], download=False)
    message = str(caught.value)
    assert message.startswith("data.root: MNIST not found")
    assert (
        str(tmp_path / "a" / "MNIST" / "raw") in message and str(tmp_path / "b" / "MNIST" / "raw") in message
    )


def test_failed_download_is_one_clear_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def offline(root: Path) -> None:
        raise OSError("network is unreachable")

    monkeypatch.setattr(mnist, "_download", offline)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(ScenarioError, match=r"download failed .*network is unreachable.*--data-dir"):
        mnist.locate([tmp_path / "nowhere"])


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
