"""Each client's own test data: held out of its partition (stratified, never trained on) or the
data set's per-client test split."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedsim.data import Dataset, federate, load_federated
from fedsim.data.client_rows import PackedRows
from fedsim.data.dataset import materialize
from fedsim.data.local_test import hold_out, natural_tests
from fedsim.scenario.sections import DataConfig
from fedsim.scenario.tables import ScenarioError


def test_hold_out_takes_floor_of_each_client_share_stratified_by_label() -> None:
    clients = PackedRows.pack([np.arange(10), np.arange(10, 13), np.arange(13, 14)])
    labels = np.array([0] * 5 + [1] * 5 + [0, 1, 0, 1])
    train, held = hold_out(clients, labels, 0.2, np.random.default_rng(0))
    # 10 rows: 2 held, one of each class; 3 rows at 0.2: floor(0.6) = 0 held; 1 row: none.
    assert [len(h) for h in held] == [2, 0, 0]
    assert sorted(labels[held[0]]) == [0, 1]
    for k in range(3):  # the rest trains, sorted, and nothing is both
        assert list(train[k]) == sorted(set(clients[k]) - set(held[k]))


def test_hold_out_is_a_function_of_the_seed() -> None:
    clients = PackedRows.pack([np.arange(0, 50), np.arange(50, 100)])
    labels = np.arange(100) % 3
    first = hold_out(clients, labels, 0.3, np.random.default_rng(7))[1]
    again = hold_out(clients, labels, 0.3, np.random.default_rng(7))[1]
    other = hold_out(clients, labels, 0.3, np.random.default_rng(8))[1]
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_text_holds_out_the_last_windows_and_drops_the_overlapping_ones() -> None:
    clients = PackedRows.pack([np.arange(0, 20)])
    train, held = hold_out(clients, np.arange(20), 0.25, np.random.default_rng(0), window=3)
    assert list(held[0]) == [15, 16, 17, 18, 19]
    # A window of 3 tokens starting at 12 reaches token 15, the first test window's: dropped.
    assert list(train[0]) == list(range(12))


def test_natural_tests_give_each_client_the_test_rows_of_its_id() -> None:
    tests = natural_tests(np.array([3, 5, 9]), np.array([5, 3, 3, 9, 5, 7]))
    assert [list(t) for t in tests] == [[1, 2], [0, 4], [3]]


def _blobs(n: int = 200) -> Dataset:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = np.arange(n) % 4
    return Dataset(train=(x, y), test=(x[:10], y[:10]), num_classes=4)


def test_client_test_fraction_leaves_the_held_out_rows_out_of_training() -> None:
    spec = DataConfig(partition="iid", num_clients=5, client_test_fraction=0.1)
    data = federate(materialize(_blobs(), "blobs"), spec, seed=1)
    assert data.local_tests is not None
    assert [len(data.local_test(k)) for k in range(5)] == [4] * 5
    assert list(data.clients.sizes()) == [36] * 5
    for k in range(5):
        assert not set(data.clients[k]) & set(data.local_tests[k])
    plain = federate(materialize(_blobs(), "blobs"), DataConfig(partition="iid", num_clients=5), seed=1)
    assert plain.local_tests is None
    assert len(plain.local_test(0)) == 0


def test_client_test_fraction_refused_with_clients_drawn_with_replacement() -> None:
    spec = DataConfig(num_clients=1000, samples_per_client=5, client_test_fraction=0.2)
    with pytest.raises(ScenarioError, match=r"data\.client_test_fraction"):
        federate(materialize(_blobs(), "blobs"), spec, seed=0)


def test_synthetic_natural_clients_get_their_own_test_tail() -> None:
    spec = DataConfig(dataset="synthetic", partition="natural", params={"devices": 6})
    data = load_federated(spec, seed=0)
    assert data.local_tests is not None and data.local_source == "test"
    sizes = [len(data.local_test(k)) for k in range(6)]
    assert sum(sizes) == len(data.test) and min(sizes) > 0
    for k in range(6):  # a device's test samples come from its own distribution: its features' mean
        own = data.local_test(k).x.mean(0)
        assert torch.allclose(own, data.client(k).x.mean(0), atol=1.0)
