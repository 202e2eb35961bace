"""GPU sharing's arithmetic and messages, checked on the CPU with hand-computed numbers.

What needs a GPU (the allocator cap taking effect, the measured footprint) is checked by
benchmarks/device.sh on a machine that has one.
"""

from __future__ import annotations

import pytest
import torch

from clients import gpu
from clients.gpu import GIB, Footprint, Share
from fedsim.scenario.files import parse_scenario
from fedsim.scenario.sections import GPU_UNITS, ResourcesConfig
from fedsim.scenario.tables import ScenarioError

H200 = 140 * GIB  # a round number near the H200's 140.4 GiB


def test_a_share_caps_the_allocator_below_it_by_the_cuda_context() -> None:
    share = Share(0.1, H200)
    assert share.bytes == 14 * GIB
    assert share.cap_bytes == 13 * GIB  # 14 GiB less the 1 GiB context allowance
    assert share.too_small() is None


def test_a_share_smaller_than_a_cuda_context_is_refused() -> None:
    assert Share(0.005, H200).too_small() == (
        "0.005 of the GPU's 140.0 GiB is 0.7 GiB, less than the 1.0 GiB a client's CUDA context takes"
    )


def test_the_reason_names_the_client_the_share_and_what_to_change() -> None:
    assert gpu.exceeded([7], Share(0.1, H200)) == (
        "client 7 needed more than its GPU share (resources.client_gpus = 0.1, 14.0 of 140.0 GiB); "
        "raise resources.client_gpus or lower client.batch_size"
    )
    assert gpu.exceeded([3, 5, 7], Share(0.25, H200)) == (
        "the cohort of clients 3, 5, 7 needed more than its GPU share (resources.client_gpus = 0.25, "
        "35.0 of 140.0 GiB); raise resources.client_gpus or lower client.batch_size or resources.cohort_size"
    )


def oom() -> int:
    raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def test_out_of_memory_within_a_share_is_the_clients_failure_and_frees_the_cache(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emptied: list[bool] = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(True))
    with pytest.raises(gpu.GpuShareExceeded, match=r"^client 4 needed more than its GPU share") as caught:
        gpu.within_share(Share(0.1, H200), [4], oom)
    assert emptied == [True]
    assert caught.value.__context__ is None  # the failed step's frames (and tensors) are let go
    assert gpu.within_share(Share(0.1, H200), [4], lambda: 42) == 42


def test_without_a_share_an_out_of_memory_error_is_left_alone() -> None:
    with pytest.raises(torch.cuda.OutOfMemoryError):
        gpu.within_share(None, [4], oom)


@pytest.mark.parametrize(
    ("need", "total", "max_clients", "expected"),
    [
        # 11 x 7 + 1 (the server's context) = 78 <= 80 GiB; 12 x 7 + 1 = 85 is not.
        # 1/11 cut to Ray's steps: 0.0909, 0.0909 x 80 = 7.27 GiB >= 7.
        (7 * GIB, 80 * GIB, 16, (0.0909, 11)),
        (7 * GIB, 80 * GIB, 4, (0.25, 4)),  # the CPUs start only 4 actors: each gets a quarter
        (30 * GIB, 100 * GIB, 16, (0.3333, 3)),  # 3 x 30 + 1 = 91 <= 100; 0.3333 x 100 = 33.3 >= 30
        (60 * GIB, 100 * GIB, 16, (1.0, 1)),  # 2 x 60 + 1 = 121 > 100: one client per GPU
    ],
)
def test_auto_picks_the_most_clients_that_fit(
    need: int, total: int, max_clients: int, expected: tuple[float, int]
) -> None:
    assert gpu.fraction_for(need, total, max_clients) == expected


def test_auto_refuses_a_client_bigger_than_the_gpu() -> None:
    with pytest.raises(ScenarioError, match=r"^resources\.client_gpus: 'auto': one client needs 150\.0 GiB"):
        gpu.fraction_for(150 * GIB, 140 * GIB, 16)


def test_one_kth_in_rays_steps_fits_k_clients_and_not_one_more() -> None:
    for k in range(1, gpu.MAX_CLIENTS_PER_GPU + 1):
        units = GPU_UNITS // k
        assert k * units <= GPU_UNITS < (k + 1) * units, k


def test_a_clients_need_is_its_peak_and_data_with_the_margin_and_its_context() -> None:
    footprint = Footprint(peak_bytes=3 * GIB, data_bytes=1 * GIB, total_bytes=H200, outside_allocator_bytes=0)
    assert footprint.need_bytes == 6 * GIB  # (3 + 1) x 1.25 + 1


@pytest.mark.parametrize(
    ("client_cpus", "cpus", "gpus", "expected"),
    [(1.0, 16, 1, 16), (1.0, 16, 2, 8), (4.0, 16, 1, 4), (32.0, 16, 1, 1), (1.0, None, 1, 99)],
)
def test_the_cpus_bound_the_clients_per_gpu(
    client_cpus: float, cpus: int | None, gpus: int, expected: int
) -> None:
    assert gpu.max_clients(ResourcesConfig(client_cpus=client_cpus), cpus, gpus) == expected


def measured_4_gib() -> Footprint:
    return Footprint(peak_bytes=4 * GIB, data_bytes=0, total_bytes=H200, outside_allocator_bytes=0)


def test_auto_is_resolved_to_a_share_the_run_folder_records() -> None:
    scenario = parse_scenario('[resources]\nclient_gpus = "auto"')
    # need = 4 x 1.25 + 1 = 6 GiB.  16 CPUs: 16 clients, 16 x 6 + 1 = 97 <= 140, 1/16 = 0.0625.
    assert gpu.resolve(scenario, measured_4_gib, cpus=16, gpus=1).resources.client_gpus == 0.0625
    # A joined cluster: up to 99; 23 x 6 + 1 = 139 <= 140 (24: 145); 0.0434 x 140 = 6.08 >= 6.
    resolved = gpu.resolve(scenario, measured_4_gib, cpus=None, gpus=1)
    assert resolved.resources.client_gpus == 0.0434
    assert "client_gpus = 0.0434" in resolved.to_toml()


def test_a_given_share_is_not_measured() -> None:
    scenario = parse_scenario("[resources]\nclient_gpus = 0.5")

    def never() -> Footprint:
        raise AssertionError("measured")

    assert gpu.resolve(scenario, never, cpus=16, gpus=1) is scenario


def test_auto_refuses_dp_sgd_whose_per_example_gradients_it_does_not_measure() -> None:
    scenario = parse_scenario(
        '[resources]\nclient_gpus = "auto"\n[privacy]\nmode = "sample"\nmax_grad_norm = 1.0\n'
        "noise_multiplier = 1.0"
    )
    with pytest.raises(ScenarioError, match=r"^resources\.client_gpus: 'auto' does not measure DP-SGD"):
        gpu.resolve(scenario, measured_4_gib, cpus=16, gpus=1)


@pytest.mark.parametrize(
    ("fraction", "gpus", "actors", "expected"),
    [
        (
            0.1,
            1,
            10,
            "1 GPU: 10 clients share each GPU, resources.client_gpus = 0.1 = 14.0 of 140.0 GiB each, "
            "tensors capped at 13.0 GiB",
        ),
        (
            0.1,
            2,
            16,
            "2 GPUs: up to 10 clients share each GPU, resources.client_gpus = 0.1 = 14.0 of 140.0 GiB "
            "each, tensors capped at 13.0 GiB",
        ),
        (
            1.0,
            1,
            1,
            "1 GPU: one client per GPU, resources.client_gpus = 1 = 140.0 of 140.0 GiB each, "
            "tensors capped at 139.0 GiB",
        ),
        (0.1, 0, None, "resources.client_gpus = 0.1 = 14.0 of 140.0 GiB each, tensors capped at 13.0 GiB"),
    ],
)
def test_the_sharing_is_said_in_one_phrase(
    fraction: float, gpus: int, actors: int | None, expected: str
) -> None:
    assert gpu.sharing(fraction, gpus, actors, H200) == expected


def test_auto_without_a_gpu_is_refused_naming_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ScenarioError, match=r"^resources\.client_gpus: 'auto' per client, but no CUDA GPU"):
        gpu.check(ResourcesConfig(client_gpus="auto"))


def test_a_share_too_small_for_this_gpu_is_refused_before_ray_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(gpu, "total_bytes", lambda device=0: H200)
    with pytest.raises(ScenarioError, match=r"^resources\.client_gpus: 0\.005 of the GPU's 140\.0 GiB"):
        gpu.check(ResourcesConfig(client_gpus=0.005))
    gpu.check(ResourcesConfig(client_gpus=0.1))  # 14 GiB: room for a context and tensors
