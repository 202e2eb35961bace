"""Synthetic(alpha, beta): the non-IID benchmark of Li et al. 2020, "Federated
Optimization in Heterogeneous Networks" (FedProx), Section 5.1, after Shamir et al. 2014.

Device k draws u_k ~ N(0, alpha) and B_k ~ N(0, beta); its model W_k, b_k ~ N(u_k, 1)
and its feature mean v_k ~ N(B_k, 1); its samples x ~ N(v_k, Sigma) with
Sigma = diag(j^-1.2), labelled y = argmax(softmax(W_k x + b_k)).  Sample counts
follow a power law (lognormal, as in the paper's generator).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import torch

from fedsim.data.dataset import Dataset
from fedsim.scenario.seeding import generator
from fedsim.scenario.tables import Bounds

NUM_FEATURES, NUM_CLASSES = 60, 10


def load(
    root: Path | None,
    *,
    devices: Annotated[int, Bounds(ge=1, le=100_000)] = 30,
    alpha: Annotated[float, Bounds(ge=0)] = 1.0,
    beta: Annotated[float, Bounds(ge=0)] = 1.0,
    test_fraction: Annotated[float, Bounds(gt=0, lt=1)] = 0.2,
    seed: int = 0,
) -> Dataset:
    """The built-in ``synthetic`` loader: ``devices`` devices (the paper's 30), each a natural client.

    ``alpha``: how much local models differ; ``beta``: how much local data differ.  Each
    device keeps its first samples for training and the last ``test_fraction`` for the
    test set, which are also its own test data (per-client evaluation).  Generated from the
    scenario's seed; ``root`` is not read.
    """
    x, y, ids = generate(devices, alpha, beta, generator(seed, "synthetic"))
    _, starts, counts = np.unique(ids, return_index=True, return_counts=True)
    cut = starts + np.floor(counts * (1 - test_fraction)).astype(np.int64)
    is_test = np.arange(len(y)) >= np.repeat(cut, counts)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    return Dataset(
        train=(tx[~is_test], ty[~is_test]),
        test=(tx[is_test], ty[is_test]),
        num_classes=NUM_CLASSES,
        client_ids=ids[~is_test],
        test_client_ids=ids[is_test],  # each device's held-out samples: its local test data
    )


def generate(
    num_devices: int, alpha: float, beta: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features (N, 60) float32, labels (N,) int64 and device ids (N,) int64."""
    sizes = rng.lognormal(4, 2, num_devices).astype(np.int64) + 50
    u = rng.normal(0, alpha, num_devices)
    b_mean = rng.normal(0, beta, num_devices)
    sigma_sqrt = np.arange(1, NUM_FEATURES + 1) ** -0.6  # sqrt of j^-1.2
    xs, ys = [], []
    for k in range(num_devices):
        w = rng.normal(u[k], 1, (NUM_FEATURES, NUM_CLASSES))
        b = rng.normal(u[k], 1, NUM_CLASSES)
        v = rng.normal(b_mean[k], 1, NUM_FEATURES)
        x = v + rng.standard_normal((sizes[k], NUM_FEATURES)) * sigma_sqrt
        xs.append(x.astype(np.float32))
        ys.append(np.argmax(x @ w + b, axis=1))  # softmax is monotone: argmax of logits
    ids = np.repeat(np.arange(num_devices), sizes)
    return np.concatenate(xs), np.concatenate(ys).astype(np.int64), ids
