"""The reference loop and the quickstart-style client do the same SGD steps as fedsim's client."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from benchmarks import plain, quickstart
from benchmarks.memory import TreeSampler
from benchmarks.workloads import Workload


def test_workloads_are_mcmahans_models_and_sampling() -> None:
    cnn, two_nn = Workload(model="cnn").scenario(), Workload(model="2nn", num_clients=10_000).scenario()
    assert (cnn.model.name, two_nn.model.name) == ("cnn", "mlp")  # fedsim's mlp is the 2NN
    assert cnn.strategy.fraction_train == pytest.approx(0.1) and two_nn.strategy.fraction_train == 0.001
    assert (cnn.client.local_epochs, cnn.client.batch_size, cnn.client.optimizer) == (1, 10, "sgd")


def test_plain_loop_trains_fedsims_cohort_with_its_step_count(data_dir: Path) -> None:
    workload = Workload(model="2nn", num_clients=100, per_round=2, rounds=2)
    data = plain.load(workload, str(data_dir))
    cohorts = [plain.cohort(workload.scenario(), r, 100) for r in (1, 2)]
    assert all(len(c) == 2 and len(set(c)) == 2 for c in cohorts) and cohorts[0] != cohorts[1]
    seconds, steps = plain.run_rounds(workload, data, threads=1)
    cfg = workload.scenario().client
    expected = sum(cfg.local_steps(len(data.clients[p])) for c in cohorts for p in c)
    assert len(seconds) == 2 and steps == expected == 2 * 2 * math.ceil(600 / 10)
    assert torch.get_num_threads() == 1


def test_quickstart_client_batches_match_the_step_count(data_dir: Path) -> None:
    workload = Workload(model="2nn", num_clients=100)
    images, labels, parts = quickstart._raw(workload.to_json(), str(data_dir))
    rows = parts[3]
    loader = DataLoader(quickstart.Images(images[rows], labels[rows]), batch_size=workload.batch_size)
    assert len(loader) == workload.scenario().client.local_steps(len(rows))
    fedsim_split = plain.load(workload, str(data_dir)).client(3)
    x, y = next(iter(loader))  # per-sample PIL + transforms: fedsim's pre-normalized tensors
    torch.testing.assert_close(x, fedsim_split.x[:10])
    assert torch.equal(y, fedsim_split.y[:10])


def test_tree_sampler_sees_a_childs_memory() -> None:
    code = "import time; b = bytearray(200 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); time.sleep(2)"
    child = subprocess.Popen([sys.executable, "-c", code])
    with TreeSampler(child.pid, interval=0.1) as sampler:
        child.wait()
        time.sleep(0.05)
    assert sampler.peaks.driver_mb > 190 and sampler.peaks.total_pss_mb > 190
    assert sampler.peaks.actors_mb == {}


def test_scaling_counts_the_work_each_round_does() -> None:
    from benchmarks import scaling

    steps = [scaling.sgd_steps_per_round(w) for w in scaling.workloads(quick=False)]
    assert steps == [600, 60, 10, 3000, 6000]  # 100, 1,000, 10,000 clients x 10; 100 x 50, x 100
