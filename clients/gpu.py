"""GPU sharing: a client's share of a GPU, the cap that holds it to that share, and ``"auto"``.

Ray only *schedules* fractional GPUs: with ``num_gpus = f`` it places ``1 / f`` actors on a
GPU and sets each one's CUDA_VISIBLE_DEVICES, but leaves their memory alone.  So every
client process caps torch's allocator itself (:func:`claim`), and a client that needs more
fails alone with a clear reason (:func:`within_share`) instead of taking every other
client on that GPU down with a CUDA out-of-memory error.  ``client_gpus = "auto"`` measures
one client on the GPU before Ray starts and picks the share (:func:`resolve`, fedsim/sim/gpu_measure.py).

Not yet verified on a GPU in this project: benchmarks/device.sh is the check.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch

from fedsim import protocol
from fedsim.scenario.sections import GPU_UNITS, ResourcesConfig, Scenario
from fedsim.scenario.tables import ScenarioError

T = TypeVar("T")
GIB = 1 << 30
# What a client process holds on its GPU outside torch's allocator, so outside the cap: the
# CUDA context (287 MB with lazy module loading, 667 MB without: pytorch/pytorch#86509) and the
# cuBLAS/cuDNN kernels loaded on first use.  Rounded up; benchmarks/device.sh measures it.
CONTEXT_BYTES = 1 * GIB
# "auto" adds this to the measured peak: the allocator rounds blocks up (to 2 MiB for large
# tensors), fragments over a long run, and partitions differ in size from the one measured.
MARGIN = 0.25
# 1/k cut to Ray's 0.0001 steps still fits k actors on a GPU (and not k + 1) up to k = 99.
MAX_CLIENTS_PER_GPU = 99


class GpuShareExceeded(RuntimeError):
    """A client needed more GPU memory than its share; its own failure, not its actor's."""


@dataclass(frozen=True)
class Share:
    """One client process's part of a GPU: ``fraction`` (resources.client_gpus) of ``total_bytes``."""

    fraction: float
    total_bytes: int

    @property
    def bytes(self) -> int:
        return int(self.fraction * self.total_bytes)

    @property
    def cap_bytes(self) -> int:
        """What torch's allocator may hold: the share less the context it cannot see."""
        return self.bytes - CONTEXT_BYTES

    def too_small(self) -> str | None:
        """Why no client fits in this share, if none does."""
        if self.cap_bytes > 0:
            return None
        return (
            f"{self.fraction:g} of the GPU's {gib(self.total_bytes)} GiB is {gib(self.bytes)} GiB, "
            f"less than the {gib(CONTEXT_BYTES)} GiB a client's CUDA context takes"
        )


def gib(n: int) -> str:
    return f"{n / GIB:.1f}"


def total_bytes(device: int = 0) -> int:
    """The GPU's memory; asking for its properties makes no CUDA context (no memory held)."""
    return int(torch.cuda.get_device_properties(device).total_memory)


def check(res: ResourcesConfig) -> None:
    """Refuse GPU shares this machine cannot give, before Ray starts (it would hang or OOM)."""
    if not res.uses_gpu:
        return
    given = "'auto'" if isinstance(res.client_gpus, str) else f"{res.client_gpus:g}"
    if not torch.cuda.is_available():
        raise ScenarioError("resources.client_gpus", f"{given} per client, but no CUDA GPU is visible; use 0")
    if not isinstance(res.client_gpus, str):
        problem = Share(res.client_gpus, total_bytes()).too_small()
        if problem is not None:
            raise ScenarioError("resources.client_gpus", problem)


def claim(fraction: float, device: torch.device) -> Share:
    """Cap this process's allocator at its share (once per process: the cap is process-wide)."""
    share = Share(fraction, total_bytes(device.index or 0))
    if problem := share.too_small():
        raise ScenarioError("resources.client_gpus", problem)
    torch.cuda.set_per_process_memory_fraction(share.cap_bytes / share.total_bytes, device)
    return share


def exceeded(partitions: Sequence[int], share: Share) -> str:
    """The reason a client (or a cohort, trained together) fails when it outgrows its share."""
    who = f"client {partitions[0]}"
    advice = "raise resources.client_gpus or lower client.batch_size"
    if len(partitions) > 1:
        who = f"the cohort of clients {', '.join(map(str, partitions))}"
        advice += " or resources.cohort_size"
    return (
        f"{who} {protocol.GPU_SHARE_EXCEEDED} (resources.client_gpus = {share.fraction:g}, "
        f"{gib(share.bytes)} of {gib(share.total_bytes)} GiB); {advice}"
    )


def within_share(share: Share | None, partitions: Sequence[int], work: Callable[[], T]) -> T:
    """``work()``; a CUDA out-of-memory error in it becomes the clients' GpuShareExceeded."""
    if share is None:
        return work()
    try:
        return work()
    except torch.cuda.OutOfMemoryError:
        pass  # leave the except block first: its traceback holds the failed step's tensors
    torch.cuda.empty_cache()  # hand back what the failed step cached; the actor goes on
    raise GpuShareExceeded(exceeded(partitions, share))


def sharing(fraction: float, gpus: int, actors: int | None, gpu_bytes: int) -> str:
    """How many clients share a GPU, and each one's memory: its share and its allocator's cap."""
    share = Share(fraction, gpu_bytes)
    text = f"resources.client_gpus = {fraction:g}"
    if gpu_bytes:
        text += f" = {gib(share.bytes)} of {gib(gpu_bytes)} GiB each"
        text += f", tensors capped at {gib(share.cap_bytes)} GiB"
    if actors is None:  # a joined Ray cluster places them
        return text
    per_gpu = min(int(1 / fraction), actors)
    clients = f"{per_gpu} clients share each GPU" if per_gpu > 1 else "one client per GPU"
    if gpus == 1:
        return f"1 GPU: {clients}, {text}"
    return f"{gpus} GPUs: {'up to ' if per_gpu > 1 else ''}{clients}, {text}"


def fraction_for(need_bytes: int, total: int, max_clients: int) -> tuple[float, int]:
    """The share of a GPU for clients that each need ``need_bytes``, and how many share it.

    The most clients k (at most ``max_clients``) such that k of them and the server's own
    CUDA context fit, with the share 1/k cut to Ray's 0.0001 steps so that Ray too fits k.
    """
    for k in range(min(max_clients, MAX_CLIENTS_PER_GPU), 0, -1):
        fraction = (GPU_UNITS // k) / GPU_UNITS
        if k * need_bytes + CONTEXT_BYTES <= total and fraction * total >= need_bytes:
            return fraction, k
    raise ScenarioError(
        "resources.client_gpus",
        f"'auto': one client needs {gib(need_bytes)} GiB, more than the GPU's {gib(total)} GiB hold "
        "beside the server's CUDA context; lower client.batch_size",
    )


@dataclass(frozen=True)
class Footprint:
    """One client measured on the GPU (fedsim/sim/gpu_measure.py)."""

    peak_bytes: int  # torch's allocator at its peak: model, gradients, activations, a few batches
    data_bytes: int  # every partition, as large as an actor's cache of them could grow (clients/workload.py)
    total_bytes: int  # the GPU's memory
    outside_allocator_bytes: int  # seen held beside torch's allocator (context, kernels, others)

    @property
    def need_bytes(self) -> int:
        """A client's whole need: peak and data, with the margin, and its CUDA context."""
        return math.ceil((self.peak_bytes + self.data_bytes) * (1 + MARGIN)) + CONTEXT_BYTES


def max_clients(res: ResourcesConfig, cpus: int | None, gpus: int) -> int:
    """Clients per GPU the CPUs allow: Ray starts min(cpus / client_cpus, gpus / client_gpus) actors."""
    if cpus is None:  # a joined Ray cluster: its CPUs are Ray's to count
        return MAX_CLIENTS_PER_GPU
    return max(1, int(cpus / res.client_cpus) // max(gpus, 1))


def resolve(scenario: Scenario, measure: Callable[[], Footprint], cpus: int | None, gpus: int) -> Scenario:
    """The scenario with ``client_gpus = "auto"`` replaced by the share a ``measure()``-d client needs."""
    res = scenario.resources
    if res.client_gpus != "auto":
        return scenario
    if scenario.privacy is not None and scenario.privacy.mode == "sample":
        raise ScenarioError(
            "resources.client_gpus",
            "'auto' does not measure DP-SGD's per-example gradients (privacy.mode = 'sample'); give a share",
        )
    footprint = measure()
    fraction, _ = fraction_for(footprint.need_bytes, footprint.total_bytes, max_clients(res, cpus, gpus))
    return dataclasses.replace(scenario, resources=dataclasses.replace(res, client_gpus=fraction))
