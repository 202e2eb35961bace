"""What "auto" adds to the measured peak, and how many clients it measures at once (CPU-checkable parts)."""

from __future__ import annotations

import numpy as np
import torch

from fedsim.data import FederatedData, Split
from fedsim.data.client_rows import DrawnRows, PackedRows
from fedsim.scenario.files import parse_scenario
from fedsim.sim import gpu_measure


def test_the_data_bound_is_every_partition_as_a_gpu_client_caches_it() -> None:
    images = Split(torch.zeros(6, 1, 28, 28), torch.zeros(6, dtype=torch.int64))
    data = FederatedData(images, images, 10, PackedRows.pack([np.arange(3), np.arange(3, 5)]))
    # 5 rows of 784 float32 (3136 bytes) and one int64 label: 5 x 3144; row 5 is in no partition.
    assert gpu_measure.data_bytes(data) == 15_720


def test_text_windows_count_as_the_token_ids_they_hold() -> None:
    windows = Split(torch.zeros(4, 80, dtype=torch.uint8), torch.zeros(4, dtype=torch.int64))
    data = FederatedData(windows, windows, 65, PackedRows.pack([np.arange(4)]))
    assert gpu_measure.data_bytes(data) == 4 * (80 + 8)


def test_a_per_client_run_measures_one_client_and_a_cohort_its_group() -> None:
    images = Split(torch.zeros(100, 1, 28, 28), torch.zeros(100, dtype=torch.int64))
    data = FederatedData(images, images, 10, PackedRows.pack([np.arange(i, i + 1) for i in range(100)]))
    assert gpu_measure._group_size(parse_scenario(""), data) == 1
    grouped = parse_scenario('[resources]\nengine = "cohort"\ncohort_size = 4')
    assert gpu_measure._group_size(grouped, data) == 4
    # Unset, a group is the round's sample: C = 0.1 of 100 clients.
    assert gpu_measure._group_size(parse_scenario('[resources]\nengine = "cohort"'), data) == 10


def test_clients_drawn_with_replacement_count_at_most_the_training_set() -> None:
    """A GPU worker keeps at most the training set's rows (clients/workload.py), whatever the population."""
    images = Split(torch.zeros(6, 1, 28, 28), torch.zeros(6, dtype=torch.int64))
    million = DrawnRows(np.arange(6), 1_000_000, 3, seed=0, keep=3)
    assert gpu_measure.data_bytes(FederatedData(images, images, 10, million)) == 6 * 3144
