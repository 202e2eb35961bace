"""The engine picks its actors and threads from the machine's CPUs and resources.client_cpus."""

from __future__ import annotations

import os

import pytest

from fedsim import engine
from fedsim.scenario import ResourcesConfig


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
