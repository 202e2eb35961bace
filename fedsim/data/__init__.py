"""Federated data sets: a pre-tensorized train/test pair plus one index array per client.

``load_federated`` is deterministic in (scenario data section, seed), so the server
and every Ray worker build the same partition independently instead of shipping it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fedsim.data import mnist, synthetic
from fedsim.data.partition import partition
from fedsim.data.roots import candidate_roots
from fedsim.scenario import DataConfig
from fedsim.seeding import generator


@dataclass(frozen=True)
class Split:
    x: torch.Tensor  # float32, ready for the model: no per-sample transform at train time
    y: torch.Tensor  # int64 class labels

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, indices: np.ndarray) -> Split:
        index = torch.from_numpy(indices)
        return Split(self.x[index], self.y[index])


@dataclass(frozen=True)
class FederatedData:
    train: Split
    test: Split
    num_classes: int
    clients: tuple[np.ndarray, ...]  # training-sample indices of each partition id

    def client(self, partition_id: int) -> Split:
        return self.train.subset(self.clients[partition_id])

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])


def load_federated(spec: DataConfig, seed: int, root: Path | None = None) -> FederatedData:
    """Load (or generate) the data set and partition its training split."""
    if spec.dataset == "mnist":
        if root is None:
            raise ValueError("MNIST needs a data root; resolve it with fedsim.data.mnist.locate")
        train, test = (Split(*mnist.load_split(root, s)) for s in ("train", "test"))
        natural_ids = None
        num_classes = 10
    else:
        train, test, natural_ids = _synthetic(spec, seed)
        num_classes = synthetic.NUM_CLASSES
    labels = train.y.numpy()
    parts = partition(labels, natural_ids, spec, generator(seed, "partition"))
    return FederatedData(train, test, num_classes, tuple(parts))


def _synthetic(spec: DataConfig, seed: int) -> tuple[Split, Split, np.ndarray]:
    """Each device keeps its first samples for training and the rest for testing."""
    cfg = spec.synthetic
    x, y, ids = synthetic.generate(spec.num_clients, cfg.alpha, cfg.beta, generator(seed, "synthetic"))
    _, starts, counts = np.unique(ids, return_index=True, return_counts=True)
    cut = starts + np.floor(counts * (1 - cfg.test_fraction)).astype(np.int64)
    is_test = np.arange(len(y)) >= np.repeat(cut, counts)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    return Split(tx[~is_test], ty[~is_test]), Split(tx[is_test], ty[is_test]), ids[~is_test]


def resolve_root(spec: DataConfig, data_dir: str | None = None) -> Path | None:
    """The folder to read ``spec.dataset`` from (downloading it if need be); None if generated."""
    if spec.dataset == "mnist":
        return mnist.locate(candidate_roots(data_dir, spec.root))
    return None
