"""Federated data sets: a loader's :class:`Dataset`, as tensors, plus one index array per client.

The loader the scenario names (a built-in or a user's, fedsim/scenario/plugins.py) gives the
samples; :func:`federate` splits the training samples into clients with fedsim's
partitioners.  Both are deterministic in (scenario data section, seed), so the server
and every Ray worker build the same partition independently instead of shipping it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fedsim.data.client_rows import PackedRows
from fedsim.data.dataset import Dataset, Tensors, materialize
from fedsim.data.federated import FederatedData, Split
from fedsim.data.local_test import hold_out, natural_tests
from fedsim.data.partition import partition
from fedsim.data.roots import candidate_roots
from fedsim.data.vocab import Vocabulary
from fedsim.scenario import plugins, signatures
from fedsim.scenario.sections import DataConfig
from fedsim.scenario.seeding import generator
from fedsim.scenario.tables import ScenarioError

__all__ = ["Dataset", "FederatedData", "Split", "Vocabulary", "find_federated", "load_federated"]

DEFAULT_NUM_CLIENTS = 100  # where neither the scenario nor the data say how many clients


def find_federated(
    spec: DataConfig, seed: int, data_dir: str | None = None, paths: Sequence[str] = ()
) -> tuple[FederatedData, Path | None]:
    """Load from the first data root the loader finds its files in; that root comes back too.

    Roots, in order: ``data_dir`` (``--data-dir``), ``data.root``, ``$FEDSIM_DATA_DIR``, the
    user cache (fedsim/data/roots.py); those that exist are tried until the loader does not
    raise FileNotFoundError.  With none, the loader gets None (generated data need no root).
    """
    roots = [r for r in candidate_roots(data_dir, spec.root) if r.is_dir()]
    missing: list[str] = []
    tried: list[Path | None] = [*roots] or [None]
    for root in tried:
        try:
            return load_federated(spec, seed, root, paths), root
        except FileNotFoundError as error:
            missing.append(_describe(error))
    searched = ", ".join(str(r) for r in roots) or "no data root exists"
    raise ScenarioError(
        "data.root",
        f"{spec.dataset!r} found no data (searched {searched}): {missing[0]}; "
        "pass --data-dir or set FEDSIM_DATA_DIR",
    )


def load_federated(
    spec: DataConfig, seed: int, root: Path | None = None, paths: Sequence[str] = ()
) -> FederatedData:
    """Load the data set from ``root``, partition its training samples, cap each partition.

    FileNotFoundError passes through (the loader found nothing under ``root``).
    """
    data = federate(load_tensors(spec, seed, root, paths), spec, seed)
    return data if spec.max_samples is None else data.capped(spec.max_samples)


def load_tensors(spec: DataConfig, seed: int, root: Path | None, paths: Sequence[str] = ()) -> Tensors:
    """The loader's data set, called as ``load(root, **params)`` (with ``seed`` if it takes one)."""
    name = spec.dataset
    loader = plugins.resolve(plugins.DATASET, name, paths)
    params = signatures.bind(plugins.DATASET, name, loader, spec.params)
    extra = signatures.given(loader, {"seed": seed})
    try:
        dataset: Any = loader(root, **params, **extra)
    except (FileNotFoundError, ScenarioError):
        raise
    except Exception as error:
        raise plugins.PluginError(
            plugins.DATASET.key, f"{name!r}: loading failed: {type(error).__name__}: {error}"
        ) from error
    return materialize(dataset, name)


def federate(data: Tensors, spec: DataConfig, seed: int) -> FederatedData:
    """Split the training rows into clients as ``spec`` says (fedsim/data/partition.py).

    Rows with a negative client id belong to no client; a sequential data set is split
    by position (its targets are no classes), so shards are pieces of the stream in order.
    ``partition = "natural"`` makes a client of each natural id; ``num_clients`` keeps the first.
    The clients' rows are packed or drawn when asked (fedsim/data/client_rows.py), never one
    array per client.
    """
    ids = data.client_ids
    rows = np.arange(len(data.train), dtype=np.int64) if ids is None else np.flatnonzero(ids >= 0)
    natural = None if ids is None else ids[rows]
    if spec.partition == "natural" and natural is None:
        raise ScenarioError(
            "data.partition", f"'natural' needs natural client ids, and {spec.dataset!r} gives none"
        )
    if spec.partition == "dirichlet" and data.sequential:
        raise ScenarioError(
            "data.partition",
            f"'dirichlet' splits by class label, which {spec.dataset!r} (a stream of tokens) lacks; "
            "use 'natural', 'iid' or 'shards'",
        )
    labels = np.arange(len(rows), dtype=np.int64) if data.sequential else data.train.y.numpy()[rows]
    found = len(np.unique(natural)) if natural is not None else None
    count = spec.num_clients or found or DEFAULT_NUM_CLIENTS
    clients = partition(labels, natural, spec, generator(seed, "partition"), count).remapped(rows)
    federated = FederatedData(data.train, data.test, data.num_classes, clients, data.vocab)
    return with_local_tests(federated, data, spec, seed, natural)


def with_local_tests(
    federated: FederatedData, data: Tensors, spec: DataConfig, seed: int, natural: np.ndarray | None
) -> FederatedData:
    """Each client's own test rows: ``data.client_test_fraction`` of its partition held out, or,
    unset, the data set's per-client test samples of a natural client (fedsim/data/local_test.py)."""
    if spec.client_test_fraction is not None:
        if not isinstance(federated.clients, PackedRows):  # DrawnRows
            raise ScenarioError(
                "data.client_test_fraction",
                "not with more clients than samples (data.samples_per_client): clients drawn "
                "with replacement share samples, so one's test samples would train another",
            )
        window = int(data.train.x.shape[1]) if data.sequential else None
        targets = data.train.y.numpy()
        rng = generator(seed, "client_test")
        train, held = hold_out(federated.clients, targets, spec.client_test_fraction, rng, window)
        return dataclasses.replace(federated, clients=train, local_tests=held, local_source="train")
    if spec.partition == "natural" and data.test_client_ids is not None and natural is not None:
        ids = np.unique(natural)[: len(federated.clients)]  # client k: the k-th natural id
        tests = natural_tests(ids, data.test_client_ids)
        return dataclasses.replace(federated, local_tests=tests, local_source="test")
    return federated


def _describe(error: FileNotFoundError) -> str:
    if error.filename is not None:
        return f"{error.filename} is missing"
    return str(error)
