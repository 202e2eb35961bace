"""The clients' rows held compactly: packed into one array, or drawn per client from the seed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fedsim.data import federate, find_federated
from fedsim.data.client_rows import DrawnRows, PackedRows
from fedsim.data.dataset import Tensors
from fedsim.data.federated import Split
from fedsim.data.partition import iid, partition, per_client
from fedsim.scenario.sections import DataConfig
from fedsim.scenario.tables import ScenarioError


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_packed_rows_behave_as_the_tuple_of_arrays_they_replace() -> None:
    parts = [np.array([1, 4]), np.array([], dtype=np.int64), np.array([0, 2, 3])]
    rows = PackedRows.pack(parts)
    assert len(rows) == 3 and [p.tolist() for p in rows] == [[1, 4], [], [0, 2, 3]]
    assert rows[-1].tolist() == [0, 2, 3] and [p.tolist() for p in rows[1:]] == [[], [0, 2, 3]]
    assert rows.sizes().tolist() == [2, 0, 3] and rows[0].dtype == np.int64
    with pytest.raises(IndexError):
        rows[3]


def test_capping_packed_rows_keeps_each_clients_first_rows() -> None:
    rows = PackedRows.pack([np.array([1, 4, 7]), np.array([0]), np.array([2, 3, 5, 6])]).capped(2)
    assert [p.tolist() for p in rows] == [[1, 4], [0], [2, 3]] and rows.sizes().tolist() == [2, 1, 2]


def test_remapping_replaces_positions_with_rows() -> None:
    rows = PackedRows.pack([np.array([0, 2]), np.array([1])]).remapped(np.array([10, 20, 30]))
    assert [p.tolist() for p in rows] == [[10, 30], [20]]


def test_while_the_data_suffice_each_client_gets_its_own_disjoint_samples() -> None:
    rows = per_client(100, 7, 13, rng())
    assert rows.sizes().tolist() == [13] * 7
    joined = np.concatenate(list(rows))
    assert len(np.unique(joined)) == 91 and all(np.all(np.diff(p) > 0) for p in rows)


def test_exactly_all_samples_per_client_are_the_plain_iid_clients() -> None:
    """1,000 clients of 60 on MNIST: the series' reference run is McMahan's IID split."""
    drawn, plain = per_client(600, 10, 60, rng(3)), iid(600, 10, rng(3))
    assert all(np.array_equal(a, b) for a, b in zip(drawn, plain, strict=True))


def test_beyond_the_data_each_client_draws_its_own_from_the_seed() -> None:
    rows = per_client(50, 1000, 20, rng(1))
    assert isinstance(rows, DrawnRows) and len(rows) == 1000 and set(rows.sizes().tolist()) == {20}
    for client in (rows[0], rows[999], rows[500]):
        assert len(np.unique(client)) == 20 and client.min() >= 0 and client.max() < 50
        assert np.all(np.diff(client) > 0)  # sorted, as every partitioner gives them
    again, other = per_client(50, 1000, 20, rng(1)), per_client(50, 1000, 20, rng(2))
    assert all(np.array_equal(rows[k], again[k]) for k in range(1000))
    assert not all(np.array_equal(rows[k], other[k]) for k in range(10))
    assert not all(np.array_equal(rows[0], rows[k]) for k in range(1, 10))  # clients differ
    every = np.concatenate([rows[k] for k in range(1000)])
    assert len(np.unique(every)) == 50  # with replacement across clients, all samples in use


def test_a_clients_draw_is_the_same_whichever_clients_were_drawn_before() -> None:
    """The server and each Ray worker build client k alone, in any order."""
    rows = per_client(60_000, 1_000_000, 60, rng())
    later = rows[123_456]
    for k in (5, 999_999, 0):
        rows[k]
    assert np.array_equal(rows[123_456], later)


def test_capped_drawn_clients_keep_the_first_of_their_draw() -> None:
    rows = per_client(50, 100, 20, rng())
    capped = rows.capped(5)
    assert capped.sizes().tolist() == [5] * 100 and np.array_equal(capped[7], rows[7][:5])


def test_a_million_clients_cost_their_data_sets_rows_not_a_million_arrays() -> None:
    """What the server and every client actor hold: MNIST's 60,000 row ids (480 kB), where one
    array of 60 per client took ~640 MB and 3 s to build in each process."""
    rows = per_client(60_000, 1_000_000, 60, rng())
    assert len(rows) == 1_000_000 and rows.nbytes == 60_000 * 8
    assert rows.sizes().nbytes == 8_000_000  # the server's per-client counts: 8 bytes each


def test_samples_per_client_needs_an_iid_partition_and_enough_samples() -> None:
    with pytest.raises(ScenarioError, match=r"^data\.samples_per_client: only with partition = 'iid'"):
        DataConfig(partition="shards", samples_per_client=10)
    spec = DataConfig(num_clients=1000, samples_per_client=6)
    with pytest.raises(ScenarioError, match=r"^data\.samples_per_client: expected at most 5 \(the samples\)"):
        partition(np.zeros(5, dtype=np.int64), None, spec, rng(), 1000)


def test_more_clients_than_samples_without_samples_per_client_says_what_allows_it() -> None:
    with pytest.raises(ScenarioError, match=r"^data\.num_clients: .*data\.samples_per_client gives more"):
        partition(np.zeros(5, dtype=np.int64), None, DataConfig(num_clients=6), rng(), 6)


def test_a_federated_data_set_of_drawn_clients_gives_each_client_its_rows() -> None:
    x = torch.arange(40, dtype=torch.float32).reshape(40, 1)
    ids = np.repeat([-1, 0], 20)  # the first 20 rows belong to no client: never drawn
    tensors = Tensors(
        Split(x, torch.zeros(40, dtype=torch.int64)), Split(x[:2], x[:2, 0].long()), 2, ids, False, None
    )
    data = federate(tensors, DataConfig(num_clients=300, samples_per_client=8), seed=0)
    assert len(data.clients) == 300
    client = data.client(299)
    assert len(client) == 8 and bool((client.x[:, 0] >= 20).all())
    assert torch.equal(
        client.x, federate(tensors, DataConfig(num_clients=300, samples_per_client=8), 0).client(299).x
    )


def test_mnist_loads_as_a_million_clients_of_60_and_a_thousand_of_60_are_plain_iid(data_dir: Path) -> None:
    spec = DataConfig(dataset="mnist", num_clients=1_000_000, samples_per_client=60)
    data = find_federated(spec, 0, str(data_dir))[0]
    assert len(data.clients) == 1_000_000 and len(data.client(999_999)) == 60
    thousand = find_federated(DataConfig(dataset="mnist", num_clients=1000), 0, str(data_dir))[0]
    same = find_federated(
        DataConfig(dataset="mnist", num_clients=1000, samples_per_client=60), 0, str(data_dir)
    )[0]
    assert all(np.array_equal(a, b) for a, b in zip(thousand.clients, same.clients, strict=True))
