"""FEMNIST from LEAF's JSON files: images, classes, one natural client per writer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fedsim.data import femnist, load_federated
from fedsim.scenario.sections import DataConfig
from fedsim.scenario.tables import ScenarioError

# Writer -> (training classes, test classes); f2 and f3 in the second file, f1 in the first.
WRITERS = {"f1": ([0, 61, 5], [5]), "f2": ([10, 10], [36, 1]), "f3": ([9], [9])}


def image(writer: str, i: int) -> list[float]:
    """784 values in [0, 1], unique to (writer, i), so a sample's origin can be read back."""
    return (np.arange(784) / 783 * 0.5 + int(writer[1:]) * 0.1 + i * 0.01).round(6).tolist()


def write_leaf(path: Path, writers: list[str], part: int) -> None:
    users = {w: WRITERS[w][part] for w in writers}
    data = {
        "users": writers,
        "num_samples": [len(y) for y in users.values()],
        "user_data": {w: {"x": [image(w, i) for i in range(len(y))], "y": y} for w, y in users.items()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def write(root: Path) -> None:
    """Two files per split, named as LEAF names them: ``_2`` comes before ``_10``."""
    for part, split in enumerate(("train", "test")):
        folder = root / "femnist" / "data" / split
        write_leaf(folder / f"all_data_10_niid_05_keep_0_{split}_9.json", ["f2", "f3"], part)
        write_leaf(folder / f"all_data_2_niid_05_keep_0_{split}_9.json", ["f1"], part)


def test_images_classes_and_writers_in_order(private_cache: Path, tmp_path: Path) -> None:
    write(tmp_path)
    loaded = femnist.load(tmp_path)
    (x, y), (x_test, y_test) = loaded.train, loaded.test
    assert loaded.num_classes == 62
    assert x.shape == (6, 1, 28, 28) and x.dtype == torch.float32 and x_test.shape == (4, 1, 28, 28)
    assert y.tolist() == [0, 61, 5, 10, 10, 9] and y.dtype == torch.int64
    assert y_test.tolist() == [5, 36, 1, 9]
    assert loaded.client_ids.tolist() == [0, 0, 0, 1, 1, 2]  # f1, f2, f3
    expected = np.array(image("f2", 1), np.float32).reshape(28, 28)  # row by row
    assert np.array_equal(x[4, 0].numpy(), expected)


def test_natural_partition_is_one_client_per_writer(private_cache: Path, tmp_path: Path) -> None:
    write(tmp_path)
    data = load_federated(DataConfig(dataset="femnist", partition="natural"), 0, tmp_path)
    assert [c.tolist() for c in data.clients] == [[0, 1, 2], [3, 4], [5]]
    assert data.client(1).y.tolist() == [10, 10] and len(data.test) == 4
    first_two = load_federated(DataConfig(dataset="femnist", partition="natural", num_clients=2), 0, tmp_path)
    assert [c.tolist() for c in first_two.clients] == [[0, 1, 2], [3, 4]]


def test_parsed_once_then_read_from_the_cache(
    private_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path)
    first = femnist.load(tmp_path)

    def no_parsing(paths: list[Path]) -> None:
        raise AssertionError("parsed the JSON again")

    monkeypatch.setattr(femnist, "parse", no_parsing)
    again = femnist.load(tmp_path)
    assert torch.equal(again.train[0], first.train[0]) and torch.equal(again.test[1], first.test[1])
    assert np.array_equal(again.client_ids, first.client_ids)


def test_missing_files_say_how_leaf_makes_them(private_cache: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as caught:
        femnist.load(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path}/femnist/data/train/*.json is missing (get it with: LEAF's ")
    assert "./preprocess.sh -s niid --sf 0.05 -k 0 -t sample" in message and "TalwalkarLab/leaf" in message


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{", "not LEAF's JSON (JSONDecodeError"),
        ('{"users": ["a"], "user_data": {}}', "not LEAF's JSON (KeyError: 'a')"),
        (
            '{"users": ["a"], "user_data": {"a": {"x": [[0.5]], "y": [1]}}}',
            "user 'a' has x (1, 1) and y (1,)",
        ),
        ('{"users": ["a"], "user_data": {"a": {"x": [], "y": [62]}}}', "user 'a' has x (0, 784) and y (1,)"),
    ],
)
def test_a_malformed_file_is_named(private_cache: Path, tmp_path: Path, content: str, problem: str) -> None:
    write(tmp_path)
    bad = tmp_path / "femnist" / "data" / "train" / "all_data_2_niid_05_keep_0_train_9.json"
    bad.write_text(content)
    with pytest.raises(ScenarioError) as caught:
        femnist.load(tmp_path)
    assert str(caught.value).startswith(f"data.root: {bad}: {problem}")


def test_a_class_outside_62_is_named(private_cache: Path, tmp_path: Path) -> None:
    write(tmp_path)
    bad = tmp_path / "femnist" / "data" / "test" / "all_data_2_niid_05_keep_0_test_9.json"
    bad.write_text(json.dumps({"users": ["a"], "user_data": {"a": {"x": [[0.0] * 784], "y": [62]}}}))
    with pytest.raises(ScenarioError, match=r"user 'a' has a class outside 0\.\.61$"):
        femnist.load(tmp_path)
