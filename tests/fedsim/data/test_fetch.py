"""`fedsim data fetch` and `fedsim data list`, with torchvision's downloader stood in for (no
network); and what a run says when a built-in's files are missing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torchvision.datasets

from fedsim.cli import main
from fedsim.data import cifar10, emnist, fetch
from fedsim.data.fashion_mnist import FASHION_MNIST
from fedsim.data.idx_images import IdxImages
from fedsim.data.mnist import MNIST

Calls = list[tuple[str, str, dict[str, Any]]]


def idx_files(images: IdxImages) -> Callable[[Path], None]:
    def write(root: Path) -> None:
        for name in (n for pair in images.files.values() for n in pair):
            path = root / images.folder / "raw" / f"{name}.gz"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")  # present is all fetch checks

    return write


def cifar_files(root: Path) -> None:
    (root / cifar10.FOLDER).mkdir(parents=True)
    for name in (n for names in cifar10.BATCHES.values() for n in names):
        (root / cifar10.FOLDER / name).write_bytes(b"")


# name -> torchvision's class, its options beyond train and download, what it writes
TORCHVISION = {
    "mnist": ("MNIST", {}, idx_files(MNIST)),
    "fashion_mnist": ("FashionMNIST", {}, idx_files(FASHION_MNIST)),
    "emnist": ("EMNIST", {"split": "balanced"}, idx_files(emnist.images("balanced"))),
    "cifar10": ("CIFAR10", {}, cifar_files),
}


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch, private_cache: Path) -> Calls:
    """torchvision's data set classes, each writing its files as the real one would, recorded."""
    calls: Calls = []
    for cls, _, write in TORCHVISION.values():

        def downloader(
            root: str, cls: str = cls, write: Callable[[Path], None] = write, **kwargs: Any
        ) -> None:
            calls.append((cls, root, kwargs))
            write(Path(root))

        monkeypatch.setattr(torchvision.datasets, cls, downloader)
    return calls


def run(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["data", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("name", list(TORCHVISION))
def test_fetch_runs_torchvisions_downloader_into_the_data_dir(
    downloads: Calls, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    cls, options, _ = TORCHVISION[name]
    code, _, err = run("fetch", name, "--data-dir", str(tmp_path / "data"), capsys=capsys)
    assert code == 0 and err == f"{name}: downloaded into {tmp_path / 'data'}\n"
    assert downloads == [(cls, str(tmp_path / "data"), {"train": True, "download": True, **options})]
    assert fetch.where(name, str(tmp_path / "data")) == tmp_path / "data"


def test_without_data_dir_into_fedsim_data_dir_else_the_cache(
    downloads: Calls, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, private_cache: Path
) -> None:
    monkeypatch.setenv("FEDSIM_DATA_DIR", str(tmp_path / "env"))
    assert fetch.fetch("mnist") == (tmp_path / "env", True)
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("FEDSIM_DATA_DIR", str(tmp_path / "file" / "data"))  # can never be a folder
    assert fetch.fetch("cifar10") == (private_cache, True)
    assert [root for _, root, _ in downloads] == [str(tmp_path / "env"), str(private_cache)]


def test_a_data_dir_that_cannot_be_written_is_exit_2(
    downloads: Calls, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("")
    code, _, err = run("fetch", "mnist", "--data-dir", str(tmp_path / "file"), capsys=capsys)
    assert code == 2 and downloads == []
    assert err == f"fedsim: error: --data-dir: {tmp_path / 'file'} is not a folder fedsim may write to\n"


def test_a_data_set_already_in_a_root_is_not_downloaded_again(
    downloads: Calls, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    idx_files(MNIST)(tmp_path / "env")
    monkeypatch.setenv("FEDSIM_DATA_DIR", str(tmp_path / "env"))
    code, _, err = run("fetch", "mnist", "--data-dir", str(tmp_path / "mine"), capsys=capsys)
    assert code == 0 and err == f"mnist: already in {tmp_path / 'env'}\n" and downloads == []


def test_offline_is_exit_1_with_one_line_saying_where_the_files_go(
    monkeypatch: pytest.MonkeyPatch, private_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def offline(root: str, **kwargs: Any) -> None:  # as torchvision reports it, mirror by mirror
        raise RuntimeError(
            "Error downloading train-images-idx3-ubyte.gz:\nTried https://ossci-datasets.s3.amazonaws.com/"
            "mnist/, got:\n<urlopen error [Errno -2] Name or service not known>\n"
        )

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    code, _, err = run("fetch", "mnist", "--data-dir", str(tmp_path), capsys=capsys)
    assert code == 1 and err == (
        "fedsim: downloading mnist failed (RuntimeError: Error downloading train-images-idx3-ubyte.gz: "
        "Tried https://ossci-datasets.s3.amazonaws.com/mnist/, got: <urlopen error [Errno -2] Name or "
        "service not known>); offline, copy its files, as torchvision.datasets.MNIST writes them, into "
        f"{tmp_path}/MNIST/raw\n"
    )


def test_an_unknown_name_is_exit_2_naming_the_known_ones(
    downloads: Calls, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run("fetch", "cifar", capsys=capsys)
    assert code == 2 and err == (
        "fedsim: error: data fetch: unknown data set 'cifar' (did you mean 'cifar10'? expected one of "
        "'mnist', 'fashion_mnist', 'emnist', 'cifar10', 'femnist')\n"
    )


def test_femnist_cannot_be_fetched_and_says_how_leaf_makes_it(
    downloads: Calls, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run("fetch", "femnist", "--data-dir", str(tmp_path), capsys=capsys)
    assert code == 2 and err.count("\n") == 1 and downloads == []
    assert err.startswith(
        "fedsim: error: data fetch: femnist cannot be downloaded; make its files with LEAF's "
    )
    assert "./preprocess.sh -s niid --sf 0.05 -k 0 -t sample" in err


def test_list_shows_where_each_data_set_is_or_how_to_get_it(
    private_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cifar_files(tmp_path)
    code, out, _ = run("list", "--data-dir", str(tmp_path), capsys=capsys)
    lines = dict(line.split(maxsplit=1) for line in out.splitlines())
    assert code == 0 and list(lines) == list(fetch.SOURCES)
    assert lines["cifar10"] == str(tmp_path) and lines["emnist"] == "missing: fedsim data fetch emnist"
    assert lines["femnist"].startswith("missing: LEAF's ./preprocess.sh")


@pytest.mark.parametrize(
    ("name", "missing", "how"),
    [
        ("mnist", "MNIST/raw/train-images-idx3-ubyte(.gz)", "fedsim data fetch mnist"),
        ("fashion_mnist", "FashionMNIST/raw/train-images-idx3-ubyte(.gz)", "fedsim data fetch fashion_mnist"),
        ("emnist", "EMNIST/raw/emnist-balanced-train-images-idx3-ubyte(.gz)", "fedsim data fetch emnist"),
        ("cifar10", "cifar-10-batches-py/data_batch_1", "fedsim data fetch cifar10"),
        ("femnist", "femnist/data/train/*.json", "LEAF's ./preprocess.sh -s niid --sf 0.05"),
    ],
)
def test_validate_without_the_files_says_how_to_get_them(
    private_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, missing: str, how: str
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    scenario = tmp_path / "scenario.toml"
    scenario.write_text(f'[data]\ndataset = "{name}"\n')
    assert main(["validate", str(scenario), "--data-dir", str(empty)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.endswith("; pass --data-dir or set FEDSIM_DATA_DIR\n")
    assert err.startswith(
        f"fedsim: error: data.root: {name!r} found no data (searched {empty}): "
        f"{empty}/{missing} is missing (get it with: {how}"
    )
