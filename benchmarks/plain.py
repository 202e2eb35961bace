"""The reference: the same SGD steps as a fedsim round, in one process, with no framework.

Each round trains the clients fedsim would sample (same seeded draw, same per-client
generators, same partitions and batches, loaded by fedsim's own ``load_federated``, so
any of its data sets: MNIST, Shakespeare) one after another with
:func:`clients.training.train`, then averages the models weighted by examples.  Its
time with one thread, halved, is the "2-core limit": what two cores could at best do.
"""

from __future__ import annotations

import time

import torch

from benchmarks.workloads import Workload
from clients import training
from fedsim.data import FederatedData, Split, find_federated
from fedsim.models.build import build_model
from fedsim.scenario.sections import Scenario
from fedsim.scenario.seeding import torch_generator
from strategies.plan import train_sample


def load(workload: Workload, data_dir: str | None) -> FederatedData:
    """The workload's data set and partitions, as fedsim's server and clients load them."""
    scenario = workload.scenario()
    data = find_federated(scenario.data, scenario.seed, data_dir)[0]
    if len(data.clients) != workload.num_clients:  # text: the data decide, and C was sized for this
        raise ValueError(
            f"{workload.label}: the data hold {len(data.clients)} clients, not {workload.num_clients}"
        )
    return data


def cohort(scenario: Scenario, server_round: int, population: int) -> list[int]:
    """The partition ids fedsim's server samples in ``server_round`` out of ``population``."""
    return train_sample(scenario, server_round, 0, population)  # attempt 0: no retried round


def run_rounds(workload: Workload, data: FederatedData, threads: int) -> tuple[list[float], int]:
    """Seconds per round and the SGD steps taken in all, training with ``threads`` threads."""
    torch.set_num_threads(threads)
    scenario, device = workload.scenario(), workload.device
    model = build_model(scenario.model, data.input_shape, data.num_classes, scenario.seed).to(device)
    global_state = {k: v.clone() for k, v in model.state_dict().items()}
    seconds: list[float] = []
    steps = 0
    for server_round in range(1, workload.rounds + 1):
        started = time.perf_counter()
        global_state, taken = one_round(scenario, model, global_state, data, server_round, device)
        steps += taken
        if device.type == "cuda":
            torch.cuda.synchronize(device)  # the round's kernels done before it is timed
        seconds.append(time.perf_counter() - started)
    return seconds, steps


def one_round(
    scenario: Scenario,
    model: torch.nn.Module,
    global_state: dict[str, torch.Tensor],
    data: FederatedData,
    server_round: int,
    device: torch.device,
) -> tuple[dict[str, torch.Tensor], int]:
    """FedAvg's round as fedsim's server and clients take it: the new global state, the SGD steps."""
    total = {k: torch.zeros_like(v) for k, v in global_state.items()}
    examples = steps = 0
    for pid in cohort(scenario, server_round, len(data.clients)):
        split = data.client(pid)
        split = Split(split.x.to(device), split.y.to(device))  # a no-op on the CPU
        model.load_state_dict(global_state)
        rng = torch_generator(scenario.seed, "train", server_round, pid)
        training.train(model, split, scenario.client, rng)
        steps += scenario.client.local_steps(len(split))
        for k, v in model.state_dict().items():
            total[k] += v * len(split)
        examples += len(split)
    return {k: v / examples for k, v in total.items()}, steps
