"""Partitioners: pure functions from labels (or natural ids) to per-client index arrays.

Each returns one sorted ``int64`` index array per client; the same generator state
gives the same partition.  ``iid`` and ``shards`` follow McMahan et al. 2017
("Communication-Efficient Learning of Deep Networks from Decentralized Data",
Section 3); ``dirichlet`` follows Hsu et al. 2019 ("Measuring the Effects of
Non-Identical Data Distribution for Federated Visual Classification").
Given text positions in reading order as labels, ``shards`` cuts a text into
contiguous pieces.  ``per_client`` gives every client ``data.samples_per_client`` rows,
drawn with replacement across clients once the clients ask for more rows than there
are: a million clients on MNIST's 60,000 (:func:`per_client`).
:func:`partition` packs the result (fedsim/data/client_rows.py).
"""

from __future__ import annotations

import numpy as np

from fedsim.data.client_rows import ClientRows, DrawnRows, PackedRows
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


def per_client(num_samples: int, num_clients: int, size: int, rng: np.random.Generator) -> ClientRows:
    """Every client ``size`` distinct samples.

    While ``num_clients * size`` samples exist, the clients' samples are disjoint: a
    permutation cut into pieces, as :func:`iid` cuts it (the same clients where
    ``num_clients * size == num_samples``).  Beyond, each client draws its ``size``
    samples uniformly from all of them, independently of the others (with replacement
    across clients), from its own stream of the seed, only when its rows are asked for.
    """
    if num_clients * size <= num_samples:
        taken = rng.permutation(num_samples)[: num_clients * size].reshape(num_clients, size)
        offsets = np.arange(0, num_clients * size + 1, size, dtype=np.int64)
        return PackedRows(np.sort(taken, axis=1).reshape(-1).astype(np.int64), offsets)
    seed = int(rng.integers(2**63))  # the root of every client's own stream
    return DrawnRows(np.arange(num_samples, dtype=np.int64), num_clients, size, seed, size)


def partition(
    labels: np.ndarray,
    natural_ids: np.ndarray | None,
    spec: DataConfig,
    rng: np.random.Generator,
    num_clients: int,
) -> ClientRows:
    """Dispatch on ``spec.partition``, checking the sizes the data allow.

    ``num_clients``: as the scenario or the data decide (fedsim/data/__init__.py);
    ``natural`` makes one client per id and needs no count, and keeps the first
    ``spec.num_clients`` where it is set.
    """
    if spec.partition == "natural":
        assert natural_ids is not None, "checked by the caller"
        return PackedRows.pack(_first(natural(natural_ids), spec))
    n = len(labels)
    if spec.samples_per_client is not None:  # checked: partition = "iid"
        if spec.samples_per_client > n:
            raise ScenarioError(
                "data.samples_per_client",
                f"expected at most {n} (the samples), got {spec.samples_per_client}",
            )
        return per_client(n, num_clients, spec.samples_per_client, rng)
    return PackedRows.pack(_split(labels, spec, rng, num_clients))


def _split(
    labels: np.ndarray, spec: DataConfig, rng: np.random.Generator, num_clients: int
) -> list[np.ndarray]:
    n = len(labels)
    if spec.partition == "shards":
        if num_clients * spec.shards_per_client > n:
            raise ScenarioError(
                "data.shards_per_client",
                f"{num_clients} clients x {spec.shards_per_client} shards exceeds {n} samples",
            )
        return shards(labels, num_clients, spec.shards_per_client, rng)
    if num_clients > n:
        raise ScenarioError(
            "data.num_clients",
            f"expected at most {n} (the samples), got {num_clients}; "
            "data.samples_per_client gives more clients than samples",
        )
    if spec.partition == "dirichlet":
        return dirichlet(labels, num_clients, spec.alpha, spec.min_partition_size, rng)
    return iid(n, num_clients, rng)


def _first(parts: list[np.ndarray], spec: DataConfig) -> list[np.ndarray]:
    """The first ``spec.num_clients`` natural clients, in id order (all where unset)."""
    count = spec.num_clients
    if count is None:
        return parts
    if count > len(parts):
        raise ScenarioError(
            "data.num_clients", f"expected at most the {len(parts)} natural clients of {spec.dataset!r}"
        )
    return parts[:count]
