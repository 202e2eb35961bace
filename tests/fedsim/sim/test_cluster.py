"""Ray's cluster, started before the run is prepared (fedsim/sim/cluster.py)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fedsim.sim import cluster

REPO = Path(__file__).resolve().parents[3]


def test_a_private_cluster_preloads_the_client_modules_and_passes_no_runtime_env() -> None:
    args = cluster.Spec(cpus=2).init_args("/repo")
    assert args["address"] == "local" and args["num_cpus"] == 2 and args["num_gpus"] == 0
    assert args["_system_config"] == {"preload_python_modules": list(cluster.PRELOAD)}
    assert "runtime_env" not in args  # Ray would not hand its prestarted workers to the actors


def test_a_joined_cluster_gets_the_path_as_a_runtime_env() -> None:
    args = cluster.Spec(cpus=None).init_args("/repo")
    assert args["runtime_env"] == {"env_vars": {"PYTHONPATH": "/repo"}}
    assert "address" not in args and "_system_config" not in args


def test_the_preloaded_modules_are_flowers_actor_and_the_client_app() -> None:
    from flwr.server.superlink.fleet.vce.backend import raybackend

    actor_module, app_module = (importlib.import_module(name) for name in cluster.PRELOAD)
    assert actor_module.ClientAppActor is raybackend.ClientAppActor
    assert app_module.app is importlib.import_module("fedsim.sim.engine").client_app


def test_only_a_run_without_gpus_starts_early(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert cluster.early(uses_gpu=True, verbose=False) is None
    assert cluster.early(uses_gpu=False, verbose=True) == cluster.Spec(len(os.sched_getaffinity(0)), 0, True)
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    assert cluster.early(uses_gpu=False, verbose=False) == cluster.Spec(None, 0, False)


def test_an_early_private_cluster_gives_actors_preloaded_workers_and_ends_with_its_block() -> None:
    # In a process of its own: this one may be connected to the tests' session cluster.
    script = textwrap.dedent(
        """
        import sys
        import ray
        from fedsim.sim import cluster

        spec = cluster.Spec(cpus=1)

        @ray.remote(num_cpus=1)
        class Probe:
            def __init__(self):
                self.loaded = "clients.app" in sys.modules  # before any message

            def loaded_at_start(self):
                return self.loaded

        with cluster.started_early(spec):
            cluster.ensure(spec)  # the early start, not a second one
            print(ray.get(Probe.remote().loaded_at_start.remote(), timeout=120))
        print(ray.is_initialized())  # shut down with the block
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "False"]


def test_a_matrix_product_in_the_main_thread_survives_ray_starting_in_another() -> None:
    """Ray forks its processes from the starting thread; OpenBLAS's fork handler used to stop
    its thread pool under the main thread's product, which then waited forever (a hang)."""
    script = textwrap.dedent(
        """
        import numpy as np
        from fedsim.sim import cluster

        a = np.random.default_rng(0).standard_normal((1500, 1500))
        spec = cluster.Spec(cpus=1)
        with cluster.started_early(spec):
            products = 0
            while not cluster._started.up.is_set() or products == 0:  # while Ray forks
                a @ a
                products += 1
            cluster.ensure(spec)
        print("done")
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run(  # the timeout bounds a hang; a healthy run takes seconds
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 and done.stdout.split() == ["done"], done.stderr[-2000:]
