"""The engine picks its actors and threads from the machine's CPUs and resources.client_cpus."""

from __future__ import annotations

import os

import pytest

from fedsim.scenario.sections import ResourcesConfig
from fedsim.sim import engine


@pytest.fixture
def two_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})


@pytest.mark.usefixtures("two_cpus")
@pytest.mark.parametrize(
    ("client_cpus", "actors", "threads", "text"),
    [
        (1.0, 2, 1, "2 client actors x 1 thread (2 CPUs, resources.client_cpus = 1)"),
        (2.0, 1, 2, "1 client actor x 2 threads (2 CPUs, resources.client_cpus = 2)"),
        (0.5, 4, 1, "4 client actors x 1 thread (2 CPUs, resources.client_cpus = 0.5)"),
    ],
)
def test_actors_fill_the_cpus_and_threads_fill_each_actors_share(
    client_cpus: float, actors: int, threads: int, text: str
) -> None:
    plan = engine.actor_plan(ResourcesConfig(client_cpus=client_cpus))
    assert (plan.cpus, plan.actors, plan.threads) == (2, actors, threads)
    assert plan.describe() == text


def test_a_joined_cluster_is_sized_by_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    plan = engine.actor_plan(ResourcesConfig())
    assert (plan.cpus, plan.actors, plan.threads) == (None, None, 1)
    assert "the Ray cluster at RAY_ADDRESS" in plan.describe()


GIB = 2**30


@pytest.mark.parametrize(
    ("plan", "text"),
    [
        (
            engine.ActorPlan(16, 10, 1, 1.0, gpus=1, client_gpus=0.1, gpu_bytes=140 * GIB),
            "10 client actors x 1 thread (16 CPUs, resources.client_cpus = 1; 1 GPU: 10 clients share each "
            "GPU, resources.client_gpus = 0.1 = 14.0 of 140.0 GiB each, tensors capped at 13.0 GiB)",
        ),
        (
            engine.ActorPlan(16, 2, 8, 8.0, gpus=2, client_gpus=1.0, gpu_bytes=80 * GIB),
            "2 client actors x 8 threads (16 CPUs, resources.client_cpus = 8; 2 GPUs: one client per GPU, "
            "resources.client_gpus = 1 = 80.0 of 80.0 GiB each, tensors capped at 79.0 GiB)",
        ),
        (
            engine.ActorPlan(None, None, 1, 1.0, gpus=0, client_gpus=0.25, gpu_bytes=80 * GIB),
            "client actors x 1 thread (the Ray cluster at RAY_ADDRESS, resources.client_cpus = 1; "
            "resources.client_gpus = 0.25 = 20.0 of 80.0 GiB each, tensors capped at 19.0 GiB)",
        ),
    ],
)
def test_a_plan_with_gpus_says_how_many_clients_share_each_and_their_memory(
    plan: engine.ActorPlan, text: str
) -> None:
    assert plan.describe() == text


@pytest.mark.usefixtures("two_cpus")
def test_sixteen_cpus_and_one_gpu_in_quarters_give_four_actors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    monkeypatch.setattr(engine.torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(engine.gpu, "total_bytes", lambda device=0: 140 * GIB)
    plan = engine.actor_plan(ResourcesConfig(client_gpus=0.25))
    assert (plan.cpus, plan.actors, plan.gpus, plan.client_gpus) == (16, 4, 1, 0.25)
    assert (
        "1 GPU: 4 clients share each GPU, resources.client_gpus = 0.25 = 35.0 of 140.0 GiB" in plan.describe()
    )
