"""Federated data sets: a pre-tensorized train/test pair plus one index array per client.

``load_federated`` is deterministic in (scenario data section, seed), so the server
and every Ray worker build the same partition independently instead of shipping it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fedsim.data import mnist, shakespeare, synthetic, text
from fedsim.data.federated import FederatedData, Split
from fedsim.data.partition import partition
from fedsim.data.roots import candidate_roots
from fedsim.data.vocab import Vocabulary
from fedsim.data.windows import federate
from fedsim.scenario import TEXT_DATASETS, DataConfig
from fedsim.seeding import generator

__all__ = ["FederatedData", "Split", "Vocabulary", "load_federated", "resolve_root"]


def load_federated(spec: DataConfig, seed: int, root: Path | None = None) -> FederatedData:
    """Load (or generate) the data set, partition its training split, cap each partition."""
    data = _load(spec, seed, root)
    return data if spec.max_samples is None else data.capped(spec.max_samples)


def _load(spec: DataConfig, seed: int, root: Path | None) -> FederatedData:
    if spec.dataset in TEXT_DATASETS:
        if root is None:
            raise ValueError("text needs a data root; resolve it with fedsim.data.resolve_root")
        return _text(spec, seed, root)
    if spec.dataset == "mnist":
        if root is None:
            raise ValueError("MNIST needs a data root; resolve it with fedsim.data.mnist.locate")
        train, test = (Split(*mnist.load_split(root, s)) for s in ("train", "test"))
        natural_ids = None
        num_classes = 10
    else:
        train, test, natural_ids = _synthetic(spec, seed)
        num_classes = synthetic.NUM_CLASSES
    parts = partition(train.y.numpy(), natural_ids, spec, generator(seed, "partition"))
    return FederatedData(train, test, num_classes, tuple(parts))


def _text(spec: DataConfig, seed: int, root: Path) -> FederatedData:
    if spec.dataset == "shakespeare":
        return federate(shakespeare.documents(text.source(spec, root)), spec, seed, "role")
    return federate(text.documents(spec, root), spec, seed, "file")


def _synthetic(spec: DataConfig, seed: int) -> tuple[Split, Split, np.ndarray]:
    """Each device keeps its first samples for training and the rest for testing."""
    cfg = spec.synthetic
    assert spec.num_clients is not None, "set for every data set but text"
    x, y, ids = synthetic.generate(spec.num_clients, cfg.alpha, cfg.beta, generator(seed, "synthetic"))
    _, starts, counts = np.unique(ids, return_index=True, return_counts=True)
    cut = starts + np.floor(counts * (1 - cfg.test_fraction)).astype(np.int64)
    is_test = np.arange(len(y)) >= np.repeat(cut, counts)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    return Split(tx[~is_test], ty[~is_test]), Split(tx[is_test], ty[is_test]), ids[~is_test]


def resolve_root(spec: DataConfig, data_dir: str | None = None) -> Path | None:
    """The folder to read ``spec.dataset`` from (downloading MNIST if need be); None if generated."""
    roots = candidate_roots(data_dir, spec.root)
    if spec.dataset in TEXT_DATASETS:
        return text.locate(spec, roots)
    if spec.dataset == "mnist":
        return mnist.locate(roots)
    return None
