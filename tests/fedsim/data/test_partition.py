"""Partitioners: sizes, label mixes, determinism; small cases worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from fedsim.data.partition import dirichlet, iid, natural, partition, shards
from fedsim.scenario.sections import DataConfig
from fedsim.scenario.tables import ScenarioError


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def assert_disjoint_cover(parts: list[np.ndarray], n: int) -> None:
    joined = np.concatenate(parts)
    assert sorted(joined.tolist()) == list(range(n))


def test_iid_sizes_differ_by_at_most_one() -> None:
    parts = iid(10, 3, rng())
    assert sorted(len(p) for p in parts) == [3, 3, 4]
    assert_disjoint_cover(parts, 10)


def test_iid_mnist_shape_is_600_each() -> None:
    parts = iid(60000, 100, rng())
    assert {len(p) for p in parts} == {600}


def test_shards_follow_mcmahan() -> None:
    # 12 samples, labels 0..5 twice; 3 clients x 2 shards = 6 shards of 2 after sorting by label:
    # shard k holds the two samples of label k, so every client sees exactly 2 labels.
    labels = np.array([0, 1, 2, 3, 4, 5] * 2)
    parts = shards(labels, 3, 2, rng())
    assert_disjoint_cover(parts, 12)
    for p in parts:
        assert len(p) == 4 and len(set(labels[p].tolist())) == 2


def test_shards_on_mnist_like_labels_give_two_digits_each() -> None:
    labels = np.repeat(np.arange(10), 6000)
    parts = shards(labels, 100, 2, rng())
    assert {len(p) for p in parts} == {600}
    assert max(len(set(labels[p].tolist())) for p in parts) <= 2  # shards of 300 never straddle here


def test_dirichlet_respects_min_size_and_covers_everything() -> None:
    labels = np.repeat(np.arange(10), 100)
    parts = dirichlet(labels, 20, 0.1, 5, rng())
    assert min(len(p) for p in parts) >= 5
    assert_disjoint_cover(parts, 1000)


def test_small_alpha_skews_labels_more_than_large_alpha() -> None:
    labels = np.repeat(np.arange(10), 500)

    def mean_labels_per_client(alpha: float) -> float:
        parts = dirichlet(labels, 10, alpha, 1, rng())
        return float(np.mean([len(np.unique(labels[p])) for p in parts]))

    assert mean_labels_per_client(0.05) < mean_labels_per_client(100.0) == 10.0


def test_dirichlet_that_cannot_reach_min_size_says_which_key() -> None:
    with pytest.raises(ScenarioError, match=r"^data\.min_partition_size: "):
        dirichlet(np.zeros(10, dtype=np.int64), 5, 0.5, 3, rng())


def test_natural_groups_by_id_in_id_order() -> None:
    ids = np.array([2, 0, 2, 1, 0, 2])
    parts = natural(ids)
    assert [p.tolist() for p in parts] == [[1, 4], [3], [0, 2, 5]]


@pytest.mark.parametrize("kind", ["iid", "dirichlet", "shards"])
def test_same_seed_same_partition_other_seed_other_partition(kind: str) -> None:
    labels = np.repeat(np.arange(10), 100)
    spec = DataConfig(partition=kind, num_clients=10)  # type: ignore[arg-type]
    a = partition(labels, None, spec, rng(1), 10)
    b = partition(labels, None, spec, rng(1), 10)
    c = partition(labels, None, spec, rng(2), 10)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_too_many_clients_is_refused() -> None:
    with pytest.raises(ScenarioError, match=r"^data\.num_clients: expected at most 5"):
        partition(np.zeros(5, dtype=np.int64), None, DataConfig(num_clients=6), rng(), 6)
    with pytest.raises(ScenarioError, match=r"^data\.shards_per_client: "):
        partition(np.zeros(5, dtype=np.int64), None, DataConfig(num_clients=3, partition="shards"), rng(), 3)
