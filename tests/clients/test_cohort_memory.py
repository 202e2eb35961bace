"""A cohort's chunk from memory (clients/cohort_memory.py), with numbers worked by hand."""

from __future__ import annotations

import torch

from clients import cohort_memory as memory
from tests.clients.test_cohort import model_for

GIB = 2**30


def test_footprint_counts_the_stack_activations_and_data() -> None:
    # 1000 float32 parameters: 5 copies (parameters, anchor, gradients, two temporaries)
    # and momentum's buffer = 6 x 4000 bytes; 500 activations x 3 copies x 4 bytes.
    plain = memory.footprint(1000, 500, 2000, momentum=True, captured=False)
    assert (plain.state, plain.activations, plain.data, plain.total) == (24_000, 6_000, 2_000, 32_000)
    # Without momentum, captured: 5 copies + the static buffers' 3 = 8 x 4000.
    assert memory.footprint(1000, 500, 2000, momentum=False, captured=True).state == 32_000
    assert memory.footprint(1000, 0, 0, momentum=False, captured=False, itemsize=8).state == 40_000


def test_group_size_is_what_fits_in_half_the_memory_at_least_one_at_most_all() -> None:
    assert memory.group_size(10, 200_000, 32_000) == 3  # floor(100,000 / 32,000)
    assert memory.group_size(10, 1_000_000, 32_000) == 10  # 15 fit, 10 sampled
    assert memory.group_size(10, 10, 32_000) == 1  # none fit: one at a time, and OOM halving past that
    assert memory.group_size(10, 200_000, 32_000, margin=1.0) == 6  # floor(200,000 / 32,000)


def test_chunks_are_as_few_and_as_even_as_the_fit_allows() -> None:
    assert memory.even_chunk(10, 8) == 5  # two chunks of 5, not 8 + 2
    assert memory.even_chunk(10, 4) == 4  # three chunks: 4, 4, 2 (padded to 4 when captured)
    assert memory.even_chunk(10, 10) == 10
    assert memory.even_chunk(7, 1) == 1


def test_cuda_memory_is_capped_by_the_ray_share_and_the_process_fraction() -> None:
    # 140 GiB device, 40 GiB free, this process holds 6 GiB of which 2 are in use.
    # A quarter of the GPU (client_gpus = 0.25): 35 GiB, less the 2 in use = 33.
    assert memory.cuda_available(40 * GIB, 140 * GIB, 2 * GIB, 6 * GIB, 1.0, 0.25) == 33 * GIB
    # A memory fraction of 0.1 caps harder: 14 - 2 = 12 GiB.
    assert memory.cuda_available(40 * GIB, 140 * GIB, 2 * GIB, 6 * GIB, 0.1, 0.25) == 12 * GIB
    # The whole GPU: free (40) plus the process's cached but unused 4 = 44 GiB.
    assert memory.cuda_available(40 * GIB, 140 * GIB, 2 * GIB, 6 * GIB, 1.0, 1.0) == 44 * GIB
    assert memory.cuda_available(0, 140 * GIB, 20 * GIB, 20 * GIB, 0.1, 1.0) == 0  # over its cap


def test_cpu_memory_is_split_among_the_actors() -> None:
    assert memory.cpu_available(24 * GIB, cpus=2, client_cpus=1.0) == 12 * GIB  # two actors
    assert memory.cpu_available(24 * GIB, cpus=2, client_cpus=2.0) == 24 * GIB
    assert memory.cpu_available(24 * GIB, cpus=2, client_cpus=0.5) == 6 * GIB


def test_activations_are_counted_on_the_meta_device() -> None:
    batch = torch.zeros(5, 1, 12, 12)  # 720 elements
    # logreg: Flatten (720) then Linear(144, 10) (50).
    assert memory.activation_elements(model_for("logreg"), batch) == 720 + 720 + 50
    # 2NN: Flatten 720, then 200-wide Linear and ReLU twice (4 x 1000), Linear to 10 (50).
    model = model_for("mlp")
    assert memory.activation_elements(model, batch) == 720 + 720 + 4 * 1000 + 50
    assert all(p.device.type == "cpu" for p in model.parameters())  # the model is untouched
    assert not model._forward_hooks and not any(m._forward_hooks for m in model.modules())
