"""Partitioners: pure functions from labels (or natural ids) to per-client index arrays.

Each returns one sorted ``int64`` index array per client; the same generator state
gives the same partition.  ``iid`` and ``shards`` follow McMahan et al. 2017
("Communication-Efficient Learning of Deep Networks from Decentralized Data",
Section 3); ``dirichlet`` follows Hsu et al. 2019 ("Measuring the Effects of
Non-Identical Data Distribution for Federated Visual Classification").
Given text positions in reading order as labels, ``shards`` cuts a text into
contiguous pieces.
"""

from __future__ import annotations

import numpy as np

from fedsim.scenario.sections import DataConfig
from fedsim.scenario.tables import ScenarioError

MAX_DIRICHLET_TRIES = 1000


def iid(num_samples: int, num_clients: int, rng: np.random.Generator) -> list[np.ndarray]:
    """A random split into ``num_clients`` parts whose sizes differ by at most one."""
    return [np.sort(p) for p in np.array_split(rng.permutation(num_samples), num_clients)]


def shards(
    labels: np.ndarray, num_clients: int, shards_per_client: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Sort by label, cut into equal shards, give each client ``shards_per_client`` at random."""
    order = np.argsort(labels, kind="stable")
    pieces = np.array_split(order, num_clients * shards_per_client)
    owners = rng.permutation(len(pieces)).reshape(num_clients, shards_per_client)
    return [np.sort(np.concatenate([pieces[s] for s in row])) for row in owners]


def dirichlet(
    labels: np.ndarray, num_clients: int, alpha: float, min_size: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Per class, split its samples over clients in proportions ~ Dir(alpha).

    Draws again until every client has at least ``min_size`` samples.
    """
    classes = np.unique(labels)
    for _ in range(MAX_DIRICHLET_TRIES):
        parts: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
        for c in classes:
            members = rng.permutation(np.flatnonzero(labels == c))
            shares = rng.dirichlet(np.full(num_clients, alpha))
            cuts = (np.cumsum(shares)[:-1] * len(members)).astype(np.int64)
            for k, chunk in enumerate(np.split(members, cuts)):
                parts[k].append(chunk)
        result = [np.sort(np.concatenate(p)) for p in parts]
        if min(len(r) for r in result) >= min_size:
            return result
    raise ScenarioError(
        "data.min_partition_size",
        f"no Dirichlet(alpha={alpha}) draw in {MAX_DIRICHLET_TRIES} gave every one of "
        f"{num_clients} clients {min_size} samples; lower it, raise data.alpha or use fewer clients",
    )


def natural(ids: np.ndarray) -> list[np.ndarray]:
    """One client per natural id (writer, device, speaker), in increasing id order."""
    order = np.argsort(ids, kind="stable")
    _, starts = np.unique(ids[order], return_index=True)
    return [np.sort(p) for p in np.split(order, starts[1:])]


def partition(
    labels: np.ndarray,
    natural_ids: np.ndarray | None,
    spec: DataConfig,
    rng: np.random.Generator,
    num_clients: int,
) -> list[np.ndarray]:
    """Dispatch on ``spec.partition``, checking the sizes the data allow.

    ``num_clients``: as the scenario or the data decide (fedsim/data/__init__.py);
    ``natural`` makes one client per id and needs no count.
    """
    n = len(labels)
    if spec.partition == "natural":
        assert natural_ids is not None, "checked by the caller"
        return natural(natural_ids)
    if spec.partition == "shards":
        if num_clients * spec.shards_per_client > n:
            raise ScenarioError(
                "data.shards_per_client",
                f"{num_clients} clients x {spec.shards_per_client} shards exceeds {n} samples",
            )
        return shards(labels, num_clients, spec.shards_per_client, rng)
    if num_clients > n:
        raise ScenarioError("data.num_clients", f"expected at most {n} (the samples), got {num_clients}")
    if spec.partition == "dirichlet":
        return dirichlet(labels, num_clients, spec.alpha, spec.min_partition_size, rng)
    return iid(n, num_clients, rng)
