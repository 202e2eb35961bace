"""``client_gpus = "auto"``: one client's footprint, measured on the GPU before Ray starts.

The scenario's model is built on the GPU and trained a few steps at the scenario's batch
size, on the largest partition's first rows, as the client trains (clients/training.py,
or clients/cohort.py for a cohort); torch's allocator reports the peak.  An actor also
keeps every partition it has trained on the GPU (clients/workload.py), so the bytes of all
partitions are added: the most its cache can grow to.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from clients import cohort, gpu, training
from clients.cohort_schedule import Member
from fedsim.data import FederatedData, Split
from fedsim.models.build import build_model
from fedsim.scenario.sections import Scenario
from fedsim.scenario.seeding import torch_generator
from fedsim.sim.cohort_choice import uses_cohorts

MEASURED_BATCHES = 3  # the peak is reached in the first step; more only show it repeats


def resolve(scenario: Scenario, data: FederatedData, cpus: int | None) -> Scenario:
    """The scenario with an ``"auto"`` GPU share measured and filled in (else unchanged)."""
    return gpu.resolve(scenario, lambda: footprint(scenario, data), cpus, torch.cuda.device_count())


def footprint(scenario: Scenario, data: FederatedData, device: int = 0) -> gpu.Footprint:
    """Train a few batches on GPU ``device`` and read the allocator's peak; free it all again."""
    cuda = torch.device("cuda", device)
    model = build_model(
        scenario.model, data.input_shape, data.num_classes, scenario.seed, scenario.python_path
    ).to(cuda)
    sample = _sample(scenario, data, cuda)
    torch.cuda.reset_peak_memory_stats(cuda)
    _train(scenario, model, sample, group=_group_size(scenario, data))
    torch.cuda.synchronize(cuda)
    peak = torch.cuda.max_memory_allocated(cuda)
    free, total = torch.cuda.mem_get_info(cuda)
    outside = total - free - torch.cuda.memory_reserved(cuda)
    del model, sample
    torch.cuda.empty_cache()  # the clients get it all back; this process keeps only its context
    return gpu.Footprint(peak, data_bytes(data), total, outside)


def data_bytes(data: FederatedData) -> int:
    """Every partition's rows as a GPU client holds them: inputs materialized, int64 targets;
    at most the training set's worth, where a worker's cache stops (clients/workload.py)."""
    rows = min(int(data.clients.sizes().sum()), len(data.train))
    x, y = data.train.x, data.train.y
    return rows * (x[0].numel() * x.element_size() + y.element_size())


def _sample(scenario: Scenario, data: FederatedData, cuda: torch.device) -> Split:
    largest = int(np.argmax(data.clients.sizes()))
    rows = data.clients[largest][: MEASURED_BATCHES * scenario.client.batch_size]
    split = data.train.subset(np.asarray(rows))
    return Split(split.x.to(cuda), split.y.to(cuda))


def _group_size(scenario: Scenario, data: FederatedData) -> int:
    """Clients one actor trains at once: 1, or a cohort (the round's sample when unset)."""
    if not uses_cohorts(scenario):
        return 1
    return scenario.resources.cohort_size or scenario.train_sample_size(len(data.clients))


def _train(scenario: Scenario, model: torch.nn.Module, sample: Split, group: int) -> None:
    cfg = dataclasses.replace(scenario.client, local_epochs=1)
    rng = torch_generator(scenario.seed, "gpu-footprint")
    if group == 1:
        training.train(model, sample, cfg, rng)
        return
    members = [Member(sample, torch_generator(scenario.seed, "gpu-footprint", i), 1) for i in range(group)]
    cohort.train_cohort(model, members, cfg)
