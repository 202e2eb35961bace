"""Synthetic(alpha, beta) of the FedProx paper, and its train/test split per device."""

from __future__ import annotations

import numpy as np
import torch

from fedsim.data import load_federated, synthetic
from fedsim.scenario.sections import DataConfig


def test_shapes_labels_and_minimum_device_size() -> None:
    x, y, ids = synthetic.generate(5, 1.0, 1.0, np.random.default_rng(0))
    assert x.shape[1] == 60 and x.dtype == np.float32
    assert set(np.unique(y).tolist()) <= set(range(10))
    assert np.bincount(ids).min() >= 50  # lognormal counts + 50
    assert len(x) == len(y) == len(ids)


def test_same_generator_state_same_data() -> None:
    a = synthetic.generate(4, 0.5, 0.5, np.random.default_rng(7))
    b = synthetic.generate(4, 0.5, 0.5, np.random.default_rng(7))
    assert all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))


def test_beta_spreads_device_feature_means() -> None:
    # v_k ~ N(B_k, 1) with B_k ~ N(0, beta): the spread of device means grows with beta.
    def spread(beta: float) -> float:
        x, _, ids = synthetic.generate(30, 0.0, beta, np.random.default_rng(0))
        means = np.array([x[ids == k].mean() for k in range(30)])
        return float(means.std())

    assert spread(5.0) > 3 * spread(0.0)


def test_each_device_keeps_its_first_80_percent_for_training() -> None:
    spec = DataConfig(
        dataset="synthetic", partition="natural", params={"devices": 6, "alpha": 0.5, "beta": 0.5}
    )
    data = load_federated(spec, seed=3, root=None)
    x, y, ids = synthetic.generate(6, 0.5, 0.5, _stream(3))
    counts = np.bincount(ids)
    assert [len(c) for c in data.clients] == [int(np.floor(n * 0.8)) for n in counts]
    assert len(data.train) + len(data.test) == len(y)
    first = data.client(0)
    assert torch.equal(first.x, torch.from_numpy(x[: len(first)]))


def _stream(seed: int) -> np.random.Generator:
    from fedsim.scenario.seeding import generator

    return generator(seed, "synthetic")
