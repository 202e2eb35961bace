"""Ray's cluster for a simulation, started early: while the driver still loads.

``ray.init`` takes 2.5-3.5 s on 2 cores (GCS, raylet, agents, worker processes).
``fedsim run`` starts it in a thread before it imports torch and Flower and loads the
data, so the two overlap; Flower's Ray backend then finds Ray up and uses it as it is
(and shuts it down after the run: the next run starts it again).

A private cluster's workers find fedsim through ``PYTHONPATH`` inherited from this
process, and import Flower's actor class and fedsim's ClientApp (torch, Flower: ~2.7 s)
as soon as Ray prestarts them (``preload_python_modules``), not at their first message.
Flower instead passes the path as a ``runtime_env``, and Ray gives an actor none of the
workers it prestarted without that env: each actor would wait for a new process.  A
cluster joined through ``RAY_ADDRESS`` was started from another environment, so only it
gets the path as a ``runtime_env``.

This module imports Ray lazily: it runs before the slow imports it overlaps.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fedsim.sim.reaper import Reaper

# The modules a client actor's process needs for its first message: Flower's actor class
# and fedsim's ClientApp (tests/test_cluster.py checks that both import).
PRELOAD = ("flwr.simulation.ray_transport.ray_actor", "clients.app")


@dataclass(frozen=True)
class Spec:
    """The cluster a run needs: ``cpus`` None joins the cluster at ``RAY_ADDRESS``."""

    cpus: int | None
    gpus: int = 0
    verbose: bool = False

    def init_args(self, path: str) -> dict[str, Any]:
        """``ray.init``'s arguments; ``path``: the PYTHONPATH the workers need."""
        args: dict[str, Any] = {
            "logging_level": logging.INFO if self.verbose else logging.ERROR,
            "log_to_driver": self.verbose,
            "include_dashboard": False,
        }
        if self.cpus is None:
            return {**args, "runtime_env": {"env_vars": {"PYTHONPATH": path}}}
        # address="local": a private cluster, not one `ray start` left running on this machine.
        return {
            **args,
            "address": "local",
            "num_cpus": self.cpus,
            "num_gpus": self.gpus,
            "_system_config": {"preload_python_modules": list(PRELOAD)},
        }


def private_cpus() -> int | None:
    """The CPUs a private Ray cluster gets; None for a cluster joined through RAY_ADDRESS."""
    return None if os.environ.get("RAY_ADDRESS") else len(os.sched_getaffinity(0))


def early(uses_gpu: bool, verbose: bool) -> Spec | None:
    """The cluster to start before the run is prepared; None where the run's GPUs must be
    counted and measured first (with torch, and ``client_gpus = "auto"`` before Ray starts)."""
    return None if uses_gpu else Spec(private_cpus(), 0, verbose)


class _Start(threading.Thread):
    """Starts Ray, then lives until :func:`stop`: the processes Ray starts get the
    parent-death signal (Linux) when the thread that started them ends.  Those that
    ignore it (the raylet's agents) a private cluster's reaper kills (fedsim/sim/reaper.py)."""

    def __init__(self, spec: Spec) -> None:
        super().__init__(name="fedsim-ray", daemon=True)
        self.spec = spec
        self.error: BaseException | None = None
        self.up = threading.Event()
        self.hold = threading.Event()

    def run(self) -> None:
        watcher = None
        try:
            began = time.time()
            _init(self.spec)
            if self.spec.cpus is not None:  # a private cluster: all its processes are ours
                watcher = Reaper.start(began, time.time())
        except BaseException as error:  # raised in the main thread by ensure()
            self.error = error
            return
        finally:
            self.up.set()
        self.hold.wait()
        import ray

        ray.shutdown()
        if watcher is not None:
            watcher.close()


_started: _Start | None = None  # the cluster this process started last, or is starting


def start_early(spec: Spec | None) -> None:
    """Begin starting Ray in the background (no-op without ``spec`` or once started)."""
    global _started
    if spec is not None and _started is None:
        one_blas_thread()
        _started = _Start(spec)
        _started.start()


@functools.cache
def one_blas_thread() -> bool:
    """Put NumPy's OpenBLAS on one thread in this process; False where it is not found.

    Ray starts its processes with a ``preexec_fn``, so with a real ``fork`` from the thread
    that starts it, and OpenBLAS's fork handler shuts its thread pool down in the parent:
    a matrix product the main thread runs meanwhile (the synthetic data's, as the driver
    loads) then waits forever on the pool.  One thread has no pool; the driver's NumPy work
    is small (the clients train with torch, whose threads this leaves alone).
    """
    import ctypes

    import numpy  # noqa: F401  # loads OpenBLAS, if NumPy uses it

    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:  # the libraries loaded (Linux)
            paths = sorted({line.split()[-1] for line in maps if "openblas" in line and ".so" in line})
    except OSError:
        return False
    found = False
    for path in paths:
        library = ctypes.CDLL(path)
        names = [f"{p}_set_num_threads{s}" for p in ("scipy_openblas", "openblas") for s in ("64_", "")]
        setter = next((getattr(library, n) for n in names if hasattr(library, n)), None)
        if setter is not None:
            setter(1)
            found = True
    return found


@contextlib.contextmanager
def started_early(spec: Spec | None, stop_after: bool = True) -> Iterator[None]:
    """Ray starting while the block runs (no-op without ``spec``); shut down after it, also
    when the block fails before the run (bad data): not left half-started at exit.
    ``stop_after`` False leaves a cluster that started to the process's exit (a command line
    about to exit), once the block has finished without error."""
    start_early(spec)
    try:
        yield
    except BaseException:
        stop()
        raise
    if stop_after:
        stop()


def ensure(spec: Spec) -> None:
    """Return once Ray runs as ``spec`` asks: the early start, or a start made now."""
    import ray

    if _started is not None:
        _started.up.wait()
        if _started.spec == spec and _started.error is None and ray.is_initialized():
            return
        stop()  # it failed, Flower shut it down after a run, or another run wanted other GPUs
    start_early(spec)
    assert _started is not None
    _started.up.wait()
    if _started.error is not None:
        error = _started.error
        stop()
        raise error


def stop() -> None:
    """Shut down the cluster this process started, if any (Ray also does at exit)."""
    global _started
    if _started is not None:
        _started.up.wait()
        _started.hold.set()
        _started.join()
        _started = None


def _init(spec: Spec) -> None:
    import ray

    if not spec.verbose:  # Ray's notice about a future default, printed at every start
        warnings.filterwarnings("ignore", category=FutureWarning, module="ray")
    # Workers import clients.app, fedsim and strategies by module name, from a checkout too.
    path = os.pathsep.join([*sys.path, *filter(None, [os.environ.get("PYTHONPATH")])])
    if spec.cpus is not None:
        os.environ["PYTHONPATH"] = path  # inherited by the private cluster's workers
    with _ray_settings(NO_CRASH_HANDLER + (LOOPBACK if spec.cpus is not None else ())):
        ray.init(**spec.init_args(path))


# Ray's switches: (environment variable, the constant Ray read from it at import, value).
# Ray's C++ core puts a crash handler over Python's SIGTERM handler in the driver: a stack
# dump on stderr at every `kill`, before fedsim's own stop (fedsim/sim/stopping.py).
NO_CRASH_HANDLER = (("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "RAY_DISABLE_FAILURE_SIGNAL_HANDLER", True),)
# A private cluster is this machine's alone, and Ray has no authentication: its GCS, raylet,
# agents and workers must not listen on every interface, where anyone on the network could
# submit work to them.  Ray puts a node on the loopback address where multi-machine clusters
# are off (as on Windows and macOS); its processes then listen on 127.0.0.1 only.
LOOPBACK = (("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "ENABLE_RAY_CLUSTER", False),)


@contextlib.contextmanager
def _ray_settings(settings: tuple[tuple[str, str, bool], ...]) -> Iterator[None]:
    """Ray's switches on while Ray starts: in the environment, for the processes it starts,
    and in its constants, for this one; as they were afterwards."""
    from ray._private import ray_constants

    saved = [(env, os.environ.get(env), name, getattr(ray_constants, name)) for env, name, _ in settings]
    for env, name, value in settings:
        os.environ[env] = "1" if value else "0"
        setattr(ray_constants, name, value)
    try:
        yield
    finally:
        for env, before, name, constant in saved:
            if before is None:
                os.environ.pop(env, None)
            else:
                os.environ[env] = before
            setattr(ray_constants, name, constant)
