"""The one module that starts Flower: simulation with the Ray backend, or ``flwr run``.

``run`` prepares and validates everything (data, partitions, resources, the run
folder) before Ray starts, then runs the ServerApp of :mod:`fedsim.sim.server` and
the ClientApp of :mod:`clients.app` on Flower's simulation engine.  The same
ServerApp for ``flwr run`` on a real SuperLink is fedsim/deploy/serverapp.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import torch
from flwr.app import Context
from flwr.server.superlink.fleet.vce.backend.backend import BackendConfig
from flwr.serverapp import Grid, ServerApp
from flwr.simulation import run_simulation

from clients import gpu
from clients.app import app as client_app
from fedsim.data import FederatedData, object_store
from fedsim.models.build import build_model
from fedsim.results import own_files
from fedsim.results.records import Summary
from fedsim.results.run_dir import SCENARIO_FILE, RunDirectory, default_out_dir
from fedsim.results.runlock import RunLock
from fedsim.scenario.sections import ResourcesConfig, Scenario
from fedsim.scenario.tables import ScenarioError
from fedsim.sim import checkpoint, cluster, engine_choice, failures, gpu_measure, handover, limits, preflight
from fedsim.sim.server import Abort, Job, Pool, Reporter, RunError, finish_resumed, scenario_digest, serve
from strategies import budget
from strategies.plan import largest_stage
from strategies.registry import async_batch

SHUTDOWN_GRACE_S = 30  # after an engine failure, for the server to close the run folder
ACTOR_RESTARTS = -1  # without limit: each restart is one failed client, counted and reported


def prepare(
    scenario: Scenario,
    out_dir: Path | None,
    data_dir: str | None,
    resume: bool = False,
    started_at: float | None = None,
) -> Job:
    """Check resources, find and partition the data, create the run folder.

    The data decide the number of simulated clients (``len(data.clients)``): for
    text that is the roles or files kept, known only now.  So do the privacy settings
    left to the run (delta's default, ``noise_multiplier = "auto"``): the run folder's
    ``scenario.toml`` records the values used.  ``resume``: ``out_dir`` is a stopped
    run's folder; its checkpoint is read and checked here, before Ray starts.  ``started_at``:
    the ``time.perf_counter()`` the run's wall-clock counts from (default: now).
    """
    started_at = time.perf_counter() if started_at is None else started_at
    if not resume:
        return _prepare(scenario, out_dir, data_dir, started_at)
    assert out_dir is not None
    own_files.refuse_links(out_dir, "--resume")  # before anything in it is opened
    lock = RunLock.take(out_dir, "--resume")  # one writer per folder, refused before the data load
    try:
        return _prepare(scenario, out_dir, data_dir, started_at, lock)
    except BaseException:
        lock.release()
        raise


def _prepare(
    scenario: Scenario,
    out_dir: Path | None,
    data_dir: str | None,
    started_at: float,
    lock: RunLock | None = None,
) -> Job:
    """``lock``: held for a resume of ``out_dir``."""
    check_resources(scenario)
    check_memory(scenario)
    checked = preflight.check(scenario, data_dir)  # the plug-ins load and fit; the data are read
    scenario, data, root = checked.scenario, checked.data, checked.root
    scenario = budget.resolve(scenario, data.clients.sizes())  # a resumed one is already
    scenario = gpu_measure.resolve(scenario, data, cluster.private_cpus())  # client_gpus = "auto"
    joined = cluster.private_cpus() is None
    scenario, chosen = engine_choice.resolve(scenario, data, checked.model, joined)  # engine = "auto"
    if lock is not None:
        assert out_dir is not None
        saved = load_checkpoint(out_dir, scenario, data)
        reopened = RunDirectory.reopen(out_dir, scenario, saved.metrics_bytes, saved.round, lock)
        return Job(scenario, data, root, reopened, started_at, saved)
    out = RunDirectory(out_dir or default_out_dir(scenario), scenario)
    if data.vocab is not None:  # once, here: clients rebuild it but never write it
        out.save_vocab(data.vocab)
    return Job(scenario, data, root, out, started_at, engine_chosen=chosen)


def load_checkpoint(run_dir: Path, scenario: Scenario, data: FederatedData) -> checkpoint.Checkpoint:
    """The stopped run's checkpoint, if it fits the run's scenario and model; else exit 2."""
    try:
        saved = checkpoint.load(run_dir)
    except checkpoint.CheckpointError as error:
        raise ScenarioError("--resume", str(error)) from None
    if saved.scenario_sha256 != scenario_digest(run_dir):
        raise ScenarioError(
            "--resume", f"{run_dir / SCENARIO_FILE}: changed since the checkpoint was written"
        )
    if saved.round > scenario.rounds:
        raise ScenarioError("--resume", f"the checkpoint is of round {saved.round} of {scenario.rounds}")
    model = build_model(
        scenario.model, data.input_shape, data.num_classes, scenario.seed, scenario.python_path
    )
    expected = {
        k: (tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in model.state_dict().items()
    }
    found = {k: (tuple(v.shape), str(v.dtype)) for k, v in saved.model.items()}
    if found != expected:
        raise ScenarioError("--resume", f"{run_dir}: the checkpoint's model does not fit the scenario's")
    return saved


@dataclass(frozen=True)
class ActorPlan:
    """How the clients run: Flower's Ray backend starts ``floor(cpus / client_cpus)`` actors
    (fewer if GPUs bound them), each training with ``threads`` torch threads.

    On 2 cores two 1-thread actors beat one 2-thread actor: batches of 10 leave a second
    thread idle, while a second actor trains another client (benchmarks/README.md).
    """

    cpus: int | None  # None: a cluster joined through RAY_ADDRESS, sized by Ray
    actors: int | None
    threads: int
    client_cpus: float
    gpus: int = 0  # this machine's, given to a private cluster (a joined one: 0, Ray's to count)
    client_gpus: float = 0.0
    gpu_bytes: int = 0  # memory of this machine's first GPU

    def describe(self) -> str:
        where = f"{self.cpus} CPUs" if self.cpus is not None else "the Ray cluster at RAY_ADDRESS"
        count = "client actors" if self.actors is None else f"{self.actors} client actor"
        count += "s" if self.actors not in (None, 1) else ""
        unit = "thread" if self.threads == 1 else "threads"
        cpus = f"{where}, resources.client_cpus = {self.client_cpus:g}"
        gpus = (
            f"; {gpu.sharing(self.client_gpus, self.gpus, self.actors, self.gpu_bytes)}"
            if self.client_gpus
            else ""
        )
        return f"{count} x {self.threads} {unit} ({cpus}{gpus})"


def actor_plan(res: ResourcesConfig) -> ActorPlan:
    """The actors and threads a run on this machine gets (a private cluster uses every CPU we may)."""
    share = res.gpu_share if res.uses_gpu else 0.0  # "auto" is resolved by prepare
    gpu_bytes = gpu.total_bytes() if share > 0 else 0
    cpus = cluster.private_cpus()
    if cpus is None:
        return ActorPlan(None, None, res.threads, res.client_cpus, 0, share, gpu_bytes)
    actors = int(cpus / res.client_cpus)
    gpus = torch.cuda.device_count() if share > 0 else 0
    if share > 0:
        actors = min(actors, int(gpus / share))  # as Flower counts its actors
    return ActorPlan(cpus, actors, res.threads, res.client_cpus, gpus, share, gpu_bytes)


def check_memory(scenario: Scenario) -> None:
    """Refuse data this machine's server and client actors could not all build (fedsim/sim/limits.py)."""
    cpus = cluster.private_cpus()  # a joined cluster's actors may run elsewhere: the server's own only
    actors = int(cpus / scenario.resources.client_cpus) if cpus is not None else 0
    limits.check_memory(scenario.data, 1 + actors, psutil.virtual_memory().available)


def check_resources(scenario: Scenario) -> None:
    """Refuse what Ray would accept and then hang on ("ActorPool is empty")."""
    res = scenario.resources
    cpus = len(os.sched_getaffinity(0))
    if res.client_cpus > cpus:
        raise ScenarioError(
            "resources.client_cpus", f"{res.client_cpus:g} per client, but this machine has {cpus}"
        )
    gpu.check(res)


def run(job: Job, reporter: Reporter, verbose: bool = False, wait_for_shutdown: bool = True) -> Summary:
    """Run ``job`` on Flower's simulation engine; raise RunError if it does not complete.

    ``wait_for_shutdown`` False: return as soon as the server has written the results, while
    Flower and Ray shut down in a background thread (about 2 s: Flower's workers poll their
    queue each second, then ``ray.shutdown``).  For a process about to exit, as the command
    line is: a private cluster's processes die with it (fedsim/sim/reaper.py).
    """
    res = job.scenario.resources
    plan = actor_plan(res)
    outcome: list[Summary] = []
    done, abort = threading.Event(), Abort()
    app = ServerApp()

    # Nodes stand in for any client (strategies/placement.py): as many as a stage addresses.
    population = len(job.data.clients)
    pool = Pool(
        max(largest_stage(job.scenario, population), async_batch(job.scenario, population)), plan.actors
    )

    failed: list[BaseException] = []  # why the server stopped, if it raised

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        try:
            # Ray is up by now: on a joined cluster the data go into its object store first.
            with_data = dataclasses.replace(pool, driver_data=put_data(job, plan))
            outcome.append(serve(grid, job, reporter, abort, with_data))
        except BaseException as error:
            failed.append(error)
            raise
        finally:
            done.set()

    if job.rounds_left == 0:  # resumed after the last round's checkpoint: no client is needed
        return finish_resumed(job)
    # Ray passes these to every client actor; max_restarts makes Ray start a new process
    # for an actor whose process died (a crash, a memory kill) instead of leaving a dead
    # actor in Flower's pool, which would fail every later message.
    backend: BackendConfig = {
        "client_resources": {
            "num_cpus": res.client_cpus,
            "num_gpus": plan.client_gpus,
            "max_restarts": ACTOR_RESTARTS,
        }
    }

    def simulate() -> None:
        cluster.ensure(cluster.Spec(plan.cpus, plan.gpus, verbose))  # Flower's backend uses it as it is
        handover.install()  # messages to the clients and back without Flower's 0.1 s poll
        with flower_logs(verbose):
            run_simulation(app, client_app, pool.nodes, "ray", backend, verbose_logging=verbose)

    try:
        if wait_for_shutdown:
            simulate()
        else:
            _until_served(simulate, done)
            if failed:  # Flower would re-raise it once shut down: here, at once
                raise failed[0]
    except BaseException as exc:
        # End the server's waits, so that it records why the run stopped and closes the folder.
        interrupted = isinstance(exc, KeyboardInterrupt)
        abort.stop("interrupted" if interrupted else engine_failure(job.scenario, exc))
        done.wait(SHUTDOWN_GRACE_S)
        raise
    if not outcome:
        raise RunError("the simulation ended before the server finished (run with -v for its log)")
    return outcome[0]


def _until_served(simulate: Callable[[], None], served: threading.Event) -> None:
    """Run ``simulate`` in a daemon thread until ``served`` is set (or it ends first); its error,
    if any, is raised here.  The main thread waits in short steps, so Ctrl-C still reaches it."""
    failed: list[BaseException] = []

    def target() -> None:
        try:
            simulate()
        except BaseException as error:
            failed.append(error)

    thread = threading.Thread(target=target, name="fedsim-simulation", daemon=True)
    thread.start()
    while not served.wait(0.1) and thread.is_alive():
        pass
    if failed:
        raise failed[0]


def put_data(job: Job, plan: ActorPlan) -> bytes | None:
    """On a joined cluster, the data the driver loaded put into Ray's object store, for nodes
    without the data root (fedsim/data/object_store.py); None for generated data, which every node
    makes itself, and for a private cluster, which runs on this machine, where the root is."""
    if plan.cpus is not None or job.data_root is None:
        return None
    return object_store.put(job.data)


def engine_failure(scenario: Scenario, exc: BaseException) -> str:
    """Why the engine stopped, with the values to change if Ray ran out of memory."""
    if failures.kind_of(f"{type(exc).__name__}: {exc}") == "out_of_memory":
        return f"the simulation engine failed: {failures.out_of_memory_advice(scenario)}"
    return f"the simulation engine failed ({exc}); run with -v for its log"


@contextlib.contextmanager
def flower_logs(verbose: bool) -> Iterator[None]:
    """Flower logs every round and client error at length; we report those ourselves."""
    logger = logging.getLogger("flwr")
    level = logger.level
    logger.setLevel(logging.DEBUG if verbose else logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            if not verbose:  # Ray's notice about a future default, printed at every start
                warnings.filterwarnings("ignore", category=FutureWarning, module="ray")
            yield
    finally:
        logger.setLevel(level)
