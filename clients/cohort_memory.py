"""How many of a group's clients a worker trains at once: its free memory over a client's footprint.

The footprint is computed, not measured by running steps: measuring needs the device's
allocator statistics (CUDA has them, the CPU does not) and costs steps on throwaway state,
while the parts are known.  Per client, in bytes of the parameters' dtype:

* the stack: parameters, the anchor (the global model, FedProx's), gradients and up to two
  temporaries of the SGD update (weight decay, the mask, clipping's scale), one more with
  momentum, and three more when the step is captured (the static buffers hold a second copy
  of parameters, anchor and momentum, clients/capture.py);
* activations for one batch of B: every layer's output, counted on a copy of the model on
  PyTorch's meta device (shapes only, no memory), times three (the output, what autograd
  saves of it, its gradient);
* the client's data, once more: the group concatenates its members' samples.

Then at most ``floor(available * MARGIN / footprint)`` clients train at once.  The margin
leaves room for what the estimate leaves out (the allocator's rounding and fragmentation,
cuDNN's workspaces, the compiler's buffers); an out-of-memory error that still happens
halves the chunk and retries (clients/cohort_group.py).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import psutil
import torch
from torch import nn
from torch.func import functional_call

STATE_COPIES = 5  # parameters, anchor, gradients, two temporaries of the update
CAPTURE_COPIES = 3  # the captured step's buffers: parameters, anchor, momentum again
ACTIVATION_COPIES = 3  # a layer's output, autograd's saved copy, its gradient
MARGIN = 0.5  # of the available memory, the share the estimate may fill


@dataclass(frozen=True)
class Footprint:
    """One client's share of a cohort step's memory, in bytes."""

    state: int
    activations: int
    data: int

    @property
    def total(self) -> int:
        return self.state + self.activations + self.data


def footprint(
    parameters: int, activations: int, data: int, *, momentum: bool, captured: bool, itemsize: int = 4
) -> Footprint:
    """A client's footprint from its parameter count, one batch's activation elements, its data bytes."""
    copies = STATE_COPIES + (1 if momentum else 0) + (CAPTURE_COPIES if captured else 0)
    return Footprint(copies * parameters * itemsize, ACTIVATION_COPIES * activations * itemsize, data)


def group_size(clients: int, available: int, per_client: int, margin: float = MARGIN) -> int:
    """How many of ``clients`` train at once: as many as fit in ``available * margin``, at least 1."""
    fit = math.floor(available * margin / max(per_client, 1))
    return max(1, min(clients, fit))


def even_chunk(clients: int, fit: int) -> int:
    """The chunk size that trains ``clients`` in as few chunks of at most ``fit`` as it can, evenly.

    10 clients of which 8 fit: two chunks of 5, not 8 and 2 (a captured step's shape is
    the chunk's, so the short chunk would train 6 idle slots).
    """
    chunks = math.ceil(clients / max(fit, 1))
    return math.ceil(clients / chunks)


def cuda_available(
    free: int, total: int, allocated: int, reserved: int, fraction: float, share: float
) -> int:
    """What this process may still allocate on its GPU.

    ``free``: the driver's free memory, plus what this process's caching allocator holds
    but does not use (``reserved - allocated``); capped by this process's part of the
    device, ``total`` times the smaller of its memory fraction (``set_per_process_memory_fraction``)
    and its Ray share (``client_gpus``: actors sharing a GPU each get that part), less what
    it has allocated already.
    """
    cap = int(total * min(fraction, share)) - allocated
    return max(0, min(free + reserved - allocated, cap))


def cpu_available(available: int, cpus: int, client_cpus: float) -> int:
    """The machine's available RAM split among the ``floor(cpus / client_cpus)`` actors Ray runs."""
    actors = max(1, int(cpus / client_cpus))
    return available // actors


def available_bytes(device: torch.device, client_cpus: float, client_gpus: float) -> int:
    """The memory this worker may use now, on ``device``."""
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        allocated, reserved = torch.cuda.memory_allocated(device), torch.cuda.memory_reserved(device)
        fraction = torch.cuda.get_per_process_memory_fraction(device)
        return cuda_available(free, total, allocated, reserved, fraction, client_gpus)
    cpus = len(os.sched_getaffinity(0))  # as fedsim/sim/engine.py's actor plan counts them
    return cpu_available(psutil.virtual_memory().available, cpus, client_cpus)


def activation_elements(model: nn.Module, batch: torch.Tensor) -> int:
    """Elements of ``batch`` and of every leaf layer's output for it, run on meta tensors (no memory)."""
    counted: list[int] = [batch.numel()]

    def count(_: nn.Module, __: object, output: object) -> None:
        if isinstance(output, torch.Tensor):
            counted.append(output.numel())

    leaves = [m for m in model.modules() if not any(True for _ in m.children())]
    hooks = [m.register_forward_hook(count) for m in leaves]
    meta = {n: torch.empty_like(p, device="meta") for n, p in model.named_parameters()}
    try:
        with torch.no_grad():
            functional_call(model, meta, (torch.empty_like(batch, device="meta"),))
    finally:
        for hook in hooks:
            hook.remove()
    return sum(counted)
