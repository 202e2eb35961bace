"""A data set whose held-out samples can be poisoned, for the test that they never train:
``data.dataset = "tests.held_out_plugin:load"``.  Blobs of 4 classes; with ``poison``, every
sample that ``data.client_test_fraction`` holds out (iid over ``num_clients``) gets features far
from its class.  Its features, not its label: the split is stratified by label, so relabelling
held-out samples would move the split itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fedsim.data import Dataset, federate
from fedsim.data.dataset import materialize
from fedsim.scenario.sections import DataConfig


def load(
    root: Path | None, *, poison: bool = False, num_clients: int = 10, fraction: float = 0.2, seed: int = 0
) -> Dataset:
    rng = np.random.default_rng(0)
    y = np.arange(600) % 4
    x = (rng.normal(size=(600, 8)) + y[:, None]).astype(np.float32)
    test = (x[:50].copy(), y[:50])  # the central test set: not poisoned
    if poison:
        spec = DataConfig(partition="iid", num_clients=num_clients, client_test_fraction=fraction)
        held = federate(materialize(Dataset((x, y), (x[:50], y[:50])), "blobs"), spec, seed).local_tests
        assert held is not None
        rows = np.concatenate(list(held))
        x[rows] = -10 * (1 + y[rows, None])  # every held-out sample far from its class's blob
    return Dataset(train=(x, y), test=test, num_classes=4)
