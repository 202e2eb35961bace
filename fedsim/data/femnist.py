"""FEMNIST: EMNIST's handwritten digits and letters partitioned by writer, as LEAF makes it
(Caldas et al. 2018, "LEAF: A Benchmark for Federated Settings", arXiv:1812.01097).

The built-in ``femnist`` loader reads the JSON files LEAF's preprocessing writes
(github.com/TalwalkarLab/leaf, data/femnist), ``<root>/femnist/data/train/*.json`` and
``<root>/femnist/data/test/*.json``, each::

    {"users": ["f0000_14", ...], "num_samples": [n, ...],
     "user_data": {"f0000_14": {"x": [[784 floats in [0, 1]], ...], "y": [class, ...]}, ...}}

A ``y`` is one of 62 classes (digits 0-9, upper-case letters 10-35, lower-case 36-61); an
``x`` is a 28x28 image row by row, kept as LEAF scaled it (no further normalization).  Each
training sample's natural client is its writer, numbered in order of appearance (files in
natural order of their names, users in file order), so ``partition = "natural"`` makes one
client per writer and ``data.num_clients`` keeps the first ones.  The test set is every
writer's held-out samples (LEAF's test files) together.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fedsim.data.dataset import Dataset
from fedsim.data.roots import missing
from fedsim.data.shared import cached_array
from fedsim.scenario.tables import ScenarioError

FOLDER = Path("femnist") / "data"  # under the data root: LEAF's data/femnist/data
NUM_CLASSES, SIDE = 62, 28
HOW = (
    "LEAF's ./preprocess.sh -s niid --sf 0.05 -k 0 -t sample, run in data/femnist of "
    "github.com/TalwalkarLab/leaf, then copy its data/train and data/test folders into femnist/data "
    "under a data root"
)


def load(root: Path | None) -> Dataset:
    """Images (N, 1, 28, 28) float32 and their classes; each training sample's writer as its client."""
    (x, y, writers), (x_test, y_test, test_writers) = (load_split(root, split) for split in ("train", "test"))
    # LEAF splits each writer's samples into its train and test files, writers in the same
    # order: a writer's number is the same in both, so its test samples are its local test data.
    return Dataset(
        train=(x, y),
        test=(x_test, y_test),
        num_classes=NUM_CLASSES,
        client_ids=writers,
        test_client_ids=test_writers,
    )


def find_files(root: Path | None, split: str) -> list[Path]:
    """A split's JSON files in natural order of their names (``_2`` before ``_10``)."""
    if root is None:
        raise missing(f"{FOLDER / split}/*.json under a data root (none exists)", HOW)
    paths = sorted((root / FOLDER / split).glob("*.json"), key=_natural)
    if not paths:
        raise missing(f"{root / FOLDER / split}/*.json", HOW)
    return paths


def _natural(path: Path) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def load_split(root: Path | None, split: str) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Images, classes and writer ids, parsed once per machine (JSON is slow) and shared."""
    paths = find_files(root, split)
    parsed = functools.cache(lambda: parse(paths))
    x = cached_array(f"femnist-{split}-x", paths, lambda: parsed()[0])
    y = cached_array(f"femnist-{split}-y", paths, lambda: parsed()[1])
    writers = cached_array(f"femnist-{split}-writers", paths, lambda: parsed()[2])
    return torch.from_numpy(x), torch.from_numpy(y), writers


def parse(paths: list[Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All users' samples of ``paths``, in order: images (N, 1, 28, 28), classes, writer ids."""
    ids: dict[str, int] = {}
    xs, ys, owners = [], [], []
    for path in paths:
        for user, (x, y) in _users(path):
            xs.append(x)
            ys.append(y)
            owners.append(np.full(len(y), ids.setdefault(user, len(ids)), np.int64))
    if not xs:
        raise ScenarioError("data.root", f"{paths[0].parent}: LEAF's files hold no samples")
    x = np.concatenate(xs).reshape(-1, 1, SIDE, SIDE)
    return x, np.concatenate(ys), np.concatenate(owners)


def _users(path: Path) -> list[tuple[str, tuple[np.ndarray, np.ndarray]]]:
    """Each user of a LEAF file with its images (n, 784) float32 and classes (n,) int64."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        users = [(str(u), data["user_data"][u]) for u in data["users"]]
        parsed = [(u, (_images(d["x"]), np.asarray(d["y"], np.int64))) for u, d in users]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise ScenarioError(
            "data.root", f"{path}: not LEAF's JSON ({type(error).__name__}: {error})"
        ) from None
    for user, (x, y) in parsed:
        if x.shape != (len(y), SIDE * SIDE) or y.ndim != 1:
            raise ScenarioError(
                "data.root",
                f"{path}: user {user!r} has x {x.shape} and y {y.shape}, expected (n, 784) and (n,)",
            )
        if len(y) and (y.min() < 0 or y.max() >= NUM_CLASSES):
            raise ScenarioError(
                "data.root", f"{path}: user {user!r} has a class outside 0..{NUM_CLASSES - 1}"
            )
    return parsed


def _images(rows: Any) -> np.ndarray:
    x = np.asarray(rows, np.float32)
    return x.reshape(0, SIDE * SIDE) if x.size == 0 else x  # a writer without samples
