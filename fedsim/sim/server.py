"""The ServerApp's work: find the clients, run the rounds, checkpoint and record each one.

A run starts at round 1, or where a stopped run's checkpoint left off
(fedsim/sim/checkpoint.py): the global model, every strategy component's state, the
clients' kept state (fedsim/sim/client_store.py: a pooled node's messages carry it) and the
random generators are restored, so the rounds that follow are those the run would have had.
The round itself is fedsim/sim/rounds.py; the waits on the clients are fedsim/sim/exchange.py.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from flwr.app import Array, ArrayRecord
from flwr.serverapp import Grid
from torch import nn

from fedsim import protocol as keys
from fedsim.data import FederatedData
from fedsim.models.build import build_model
from fedsim.results.records import RoundRecord, Summary
from fedsim.results.run_dir import SCENARIO_FILE, RunDirectory
from fedsim.results.statetree import sha256
from fedsim.scenario import objects
from fedsim.scenario.sections import Scenario
from fedsim.scenario.tables import describe
from fedsim.sim import channel, cohort_engine
from fedsim.sim import checkpoint as ckpt
from fedsim.sim.async_rounds import AsyncLoop, Versions
from fedsim.sim.client_store import ClientStore
from fedsim.sim.cohort_choice import engine_line
from fedsim.sim.discovery import discover_partitions
from fedsim.sim.divergence import Diverged
from fedsim.sim.exchange import (
    Abort,
    RunError,
    array_bytes,
    exchange,
    startup_timeout,
    wait_for_nodes,
)
from fedsim.sim.rounds import Reporter, RoundLoop, in_dtypes_of
from strategies.asynchronous import AsyncStrategy
from strategies.budget import Budget, BudgetSpent
from strategies.placement import Placement
from strategies.registry import algorithm_of, build_async, build_strategy, is_async
from strategies.sampling import SeededSampling

__all__ = [
    "Abort",
    "Job",
    "Reporter",
    "RoundRecord",
    "RunError",
    "array_bytes",
    "discover_partitions",
    "exchange",
    "in_dtypes_of",
    "serve",
]


@dataclass(frozen=True)
class Job:
    """Everything the server needs, prepared (and validated) before any client starts."""

    scenario: Scenario
    data: FederatedData
    data_root: Path | None
    out: RunDirectory
    started_at: float  # time.perf_counter() when the user's command began
    resume: ckpt.Checkpoint | None = None  # where a stopped run goes on from
    engine_chosen: str = ""  # why the engine, where the scenario left it to fedsim (engine_choice.py)

    @property
    def wall_time_s(self) -> float:
        """Of the whole run: earlier sessions (to their last checkpoint) and this one."""
        before = self.resume.wall_time_s if self.resume else 0.0
        return before + time.perf_counter() - self.started_at

    @property
    def rounds_left(self) -> int:
        """Rounds still to train: none once a run that stops at its target has reached it."""
        evaluation = self.scenario.evaluation
        if evaluation.stop_at_target and any(evaluation.reached(r.accuracy) for r in self.out.records):
            return 0
        return self.scenario.rounds - (self.resume.round if self.resume else 0)

    def stamped(self, record: RoundRecord) -> RoundRecord:
        """``record`` with the run's wall-clock so far: its time to accuracy."""
        return dataclasses.replace(record, elapsed_s=round(self.wall_time_s, 3))


@dataclass(frozen=True)
class Pool:
    """A simulation's nodes, which stand in for any client (strategies/placement.py)."""

    nodes: int
    workers: int | None  # Ray's client actors (None: unknown, a joined cluster)
    driver_data: bytes | None = None  # the driver's data in Ray's object store (fedsim/data/object_store.py)


def serve(grid: Grid, job: Job, reporter: Reporter, abort: Abort, pool: Pool | None = None) -> Summary:
    """Run every round left; always close the run folder, with the error if one stopped it.

    ``pool``: the simulation's; None: each node holds its own partition, as SuperNodes do.
    """
    scenario, data = job.scenario, job.data
    model = build_model(
        scenario.model, data.input_shape, data.num_classes, scenario.seed, scenario.python_path
    )
    arrays = _model_arrays(job.resume) if job.resume else ArrayRecord(model.state_dict())
    stop: str | None = None  # why the privacy budget ended training early
    budget: Budget | None = None
    try:
        examples = data.clients.sizes()  # each partition's training examples, without building any
        budget = Budget(scenario, examples) if scenario.privacy else None
        timeout = startup_timeout(scenario.resources.round_timeout_s)
        placement = _place(grid, len(data.clients), pool, timeout, abort, reporter)
        parameters = tuple(name for name, _ in model.named_parameters())
        writer = ckpt.CheckpointWriter(job.out.path)
        clients = ClientStore(ckpt.clients_folder(job.out.path))
        config = message_config(job, pool)
        loop: RoundLoop | AsyncLoop
        if is_async(scenario):
            strategy: object = build_async(scenario, placement.population)
            assert isinstance(strategy, AsyncStrategy)
            loop = AsyncLoop(
                grid,
                scenario,
                data.test,
                strategy,
                model,
                config,
                reporter,
                abort,
                clients,
                placement,
                examples,
                channel.task_bytes(arrays, scenario),
            )
            versions: Versions | None = loop.versions
        else:
            strategy = build_strategy(scenario, placement, parameters)
            assert isinstance(strategy, SeededSampling)
            loop = RoundLoop(
                grid,
                scenario,
                data.test,
                strategy,
                model,
                config,
                reporter,
                abort,
                clients,
                placement.population,
                algorithm_of(scenario),
                budget,
                _balance(pool, scenario, examples),
                clock=job.out.records[-1].virtual_time_s if job.out.records else 0.0,  # a resume goes on
            )
            versions = None
        roots = {"strategy": strategy, "budget": budget, "versions": versions}
        if job.resume is None:
            ckpt.seed_globals(scenario.seed)
            _checkpoint(writer, job, 0, arrays, roots, clients)
        else:
            _restore(job.resume, roots, clients)
            if isinstance(loop, AsyncLoop):
                loop.replay(job.resume.round)
        engine = engine_line(scenario)
        reporter.started(scenario, placement.population, [engine] if engine else [])
        for server_round in range(scenario.rounds - job.rounds_left + 1, scenario.rounds + 1):
            try:
                arrays, record = loop.run(server_round, arrays)
            except BudgetSpent as spent:
                stop = str(spent)
                reporter.warn(stop)
                break
            record = job.stamped(record)
            job.out.append(record)  # the row first: the checkpoint then commits it
            _checkpoint(writer, job, server_round, arrays, roots, clients)
            reporter.round_done(record)
            if scenario.evaluation.stop_at_target and scenario.evaluation.reached(record.accuracy):
                break
    except BaseException as exc:
        kept = None if isinstance(exc, Diverged) else arrays  # a diverged run has no model to keep
        _close_failed(job, model, kept, _describe(exc), budget, reporter)
        raise
    return _finish(job, model, arrays, None, stop, budget.epsilon() if budget is not None else None)


def _close_failed(
    job: Job,
    model: nn.Module,
    arrays: ArrayRecord | None,
    error: str,
    budget: Budget | None,
    reporter: Reporter,
) -> None:
    """Write a failed run's results; a failure doing so (a full disk) is reported, never raised
    in place of the error that stopped the run."""
    try:
        _finish(job, model, arrays, error, None, budget.epsilon() if budget is not None else None)
    except Exception as failure:
        reporter.warn(f"could not write the run's results: {describe(failure)}")


def message_config(job: Job, pool: Pool | None) -> dict[str, str | bytes]:
    """What every message carries: the scenario, the data root, and in simulation (``pool``)
    the Python objects a run was given as plug-ins (a SuperNode never unpickles the server's
    bytes) and the token for the data the driver put into Ray's object store, if it did."""
    scenario = job.scenario
    config: dict[str, str | bytes] = {
        keys.SCENARIO: scenario.to_toml(),
        keys.DATA_ROOT: str(job.data_root or ""),
    }
    names = (scenario.model.name, scenario.data.dataset, scenario.client.update, scenario.strategy.name)
    pickled = objects.pickled(names) if pool is not None else None
    if pickled is not None:
        config[keys.PLUGIN_OBJECTS] = pickled
    if pool is not None and pool.driver_data is not None:
        config[keys.DRIVER_DATA] = pool.driver_data
    return config


def _balance(pool: Pool | None, scenario: Scenario, examples: np.ndarray) -> cohort_engine.Balance | None:
    """How the cohort engine groups a round's clients when the scenario gives no cohort_size."""
    if pool is None or pool.workers is None:
        return None
    return cohort_engine.Balance(pool.workers, examples, scenario.client)


def _place(
    grid: Grid, population: int, pool: Pool | None, timeout: float, abort: Abort, reporter: Reporter
) -> Placement:
    if pool is not None:
        return Placement.pool(wait_for_nodes(grid, pool.nodes, timeout, abort), population)
    found = discover_partitions(grid, population, timeout, abort)
    for line in found.idle:  # extra or stale SuperNodes: the run goes on without them
        reporter.warn(line)
    return Placement.fixed(found.partitions)


def finish_resumed(job: Job) -> Summary:
    """A resumed run whose checkpoint holds its last round: only the results are left to write."""
    assert job.resume is not None and job.rounds_left == 0
    data = job.data
    model = build_model(
        job.scenario.model, data.input_shape, data.num_classes, job.scenario.seed, job.scenario.python_path
    )
    return _finish(job, model, _model_arrays(job.resume), None)


def _finish(
    job: Job,
    model: nn.Module,
    arrays: ArrayRecord | None,
    error: str | None,
    privacy_stop: str | None = None,
    epsilon: float | None = None,
) -> Summary:
    """``epsilon``: spent by the whole run (None: the last round's, as recorded); ``arrays``
    None: no ``model.pt``."""
    if arrays is None:
        return job.out.finish(None, job.wall_time_s, error, privacy_stop, epsilon)
    model.load_state_dict(arrays.to_torch_state_dict())
    return job.out.finish(model.state_dict(), job.wall_time_s, error, privacy_stop, epsilon)


def _checkpoint(
    writer: ckpt.CheckpointWriter,
    job: Job,
    server_round: int,
    arrays: ArrayRecord,
    roots: Mapping[str, object | None],
    clients: ClientStore,
) -> None:
    """``roots``: the components whose state the checkpoint walks (the strategy chain, the
    privacy accountant, an asynchronous run's model versions), by the name saved under."""
    state = ckpt.Checkpoint(
        round=server_round,
        model={k: a.numpy() for k, a in arrays.items()},
        strategy={
            k: v
            for name, root in roots.items()
            if root is not None
            for k, v in ckpt.collect(root, name).items()
        },
        clients=clients.commit(server_round),  # their files first: the checkpoint names them
        rng=ckpt.rng_state(),
        metrics_bytes=job.out.metrics_bytes,
        wall_time_s=job.wall_time_s,
        scenario_sha256=scenario_digest(job.out.path),
    )
    writer.save(state)


def scenario_digest(run_dir: Path) -> str:
    """Of ``scenario.toml``: a checkpoint belongs to the scenario it was written for."""
    return sha256((run_dir / SCENARIO_FILE).read_bytes())


def _restore(saved: ckpt.Checkpoint, roots: Mapping[str, object | None], clients: ClientStore) -> None:
    try:
        for name, root in roots.items():
            if root is not None:
                ckpt.restore(root, saved.strategy, name)
        clients.restore(saved.clients)
    except (ckpt.CheckpointError, ValueError, OSError) as error:
        raise RunError(f"cannot resume: {error}") from None
    ckpt.set_rng_state(saved.rng)


def _model_arrays(saved: ckpt.Checkpoint) -> ArrayRecord:
    return ArrayRecord({k: Array(v) for k, v in saved.model.items()})


def _describe(exc: BaseException) -> str:
    if isinstance(exc, RunError):
        return str(exc)
    if isinstance(exc, KeyboardInterrupt | SystemExit):  # Ctrl-C, or `flwr stop` ending the ServerApp
        return "stopped before the last round (interrupted)"
    return describe(exc)  # a full disk: the path and the reason
