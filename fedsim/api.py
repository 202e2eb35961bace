"""The Python API: run and compare scenarios from a script or a notebook.

    import fedsim

    result = fedsim.run("scenarios/mnist_cnn_iid.toml", set=["rounds=5"], model=my_model)
    print(result.summary["final_accuracy"], result.metrics[-1]["accuracy"])

``model``, ``dataset``, ``strategy`` and ``update`` take the Python objects themselves (a
function, a class): they replace the scenario's names and reach the Ray workers pickled
(fedsim/scenario/plugins.py), so nothing needs a module file.  The command line is a thin layer
over :func:`run` and :func:`compare`: the same checks, the same run folders.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from fedsim.results import own_files
from fedsim.results.runlock import RunLock
from fedsim.scenario import files, objects
from fedsim.scenario.files import parse_table, read_text
from fedsim.scenario.sections import Scenario, VariantConfig
from fedsim.scenario.tables import ScenarioError, describe, from_table, one_line, to_table
from fedsim.scenario.variants import Run, parse_seeds, plan
from fedsim.sim import cluster, stopping

if TYPE_CHECKING:
    from fedsim.sim import sweep  # Flower and torch: imported when a comparison runs

SCENARIO_FILE, METRICS_FILE, SUMMARY_FILE, MODEL_FILE = (
    "scenario.toml",
    "metrics.jsonl",
    "summary.json",
    "model.pt",
)
TABLE_MD = "comparison.md"

ScenarioLike = Scenario | str | Path | None  # None: the built-in quickstart


@dataclass(frozen=True)
class RunResult:
    """A run folder, read on demand: what a run recorded, complete or not."""

    out: Path
    label: str | None = None  # in a comparison: the variant
    seed: int | None = None
    error: str | None = None  # None: it completed

    @property
    def metrics(self) -> list[dict[str, Any]]:
        """The rows of ``metrics.jsonl``, one per finished round."""
        path = self.out / METRICS_FILE
        if not path.is_file():
            return []
        with path.open(encoding="utf-8") as stream:
            return [json.loads(line) for line in stream if line.strip()]

    @property
    def summary(self) -> dict[str, Any]:
        """``summary.json``: final and best accuracy, the round reaching the target, epsilon, ..."""
        summary: dict[str, Any] = json.loads((self.out / SUMMARY_FILE).read_text(encoding="utf-8"))
        return summary

    @property
    def weights(self) -> dict[str, Any]:
        """The final global model's state dict (``model.pt``)."""
        import torch

        state: dict[str, Any] = torch.load(self.out / MODEL_FILE, weights_only=True)
        return state

    @property
    def scenario(self) -> Scenario:
        """The scenario as the run used it, every value resolved."""
        return from_table(Scenario, parse_table(read_text(self.out / SCENARIO_FILE)))


@dataclass(frozen=True)
class Comparison:
    """The runs of :func:`compare`, their table (``comparison.md``) and figures in ``out``."""

    out: Path
    runs: tuple[RunResult, ...]

    @property
    def table(self) -> str:
        return (self.out / TABLE_MD).read_text(encoding="utf-8")

    @property
    def failed(self) -> int:
        return sum(r.error is not None for r in self.runs)


@dataclass(frozen=True)
class Timing:
    """When a run's clock starts, and whether it waits for Ray to shut down (:func:`run`)."""

    started_at: float  # time.perf_counter()
    wait_for_shutdown: bool = True


class RunFailed(RuntimeError):
    """A run that did not complete; ``result`` holds what it recorded (None: it never started)."""

    def __init__(self, reason: str, result: RunResult | None, resumable: bool = True) -> None:
        hint = resume_hint(result.out) if result and resumable else ""  # a diverged run would again
        where = f"; finished rounds are in {result.out}{hint}" if result else ""
        super().__init__(f"run failed{'' if result else ' before it started'}: {reason}{where}")
        self.reason, self.result = reason, result


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during a run or a comparison; what finished is kept.

    ``signum``: the signal that stopped it (fedsim/sim/stopping.py; SIGINT for a
    KeyboardInterrupt raised otherwise)."""

    def __init__(self, out: Path, detail: str) -> None:
        super().__init__(f"interrupted; {detail}")
        self.out = out
        self.signum = stopping.received() or signal.SIGINT


def load_scenario(path: str | Path | None = None, set: Sequence[str] = ()) -> Scenario:
    """A scenario file (None: the built-in quickstart) with ``--set`` style overrides, validated."""
    return files.load_scenario(path, tuple(set))


def run(
    scenario: ScenarioLike = None,
    *,
    out: str | Path | None = None,
    set: Sequence[str] = (),
    model: object = None,
    dataset: object = None,
    strategy: object = None,
    update: object = None,
    data_dir: str | Path | None = None,
    resume: str | Path | None = None,
    console: Console | None = None,
    verbose: bool = False,
    wait_for_shutdown: bool = True,
    started_at: float | None = None,
) -> RunResult:
    """Run a scenario (a file, a :class:`Scenario`, or None for the quickstart) to its end.

    ``resume``: a stopped run's folder, continued from its last complete round (give the
    same Python objects it ran with, if any).  ``wait_for_shutdown`` False returns once the
    results are written, while Flower and Ray shut down in the background: for a script
    about to exit (the command line does), not for one that runs again.  ``started_at``: the
    ``time.perf_counter()`` that wall times and ``time_to_target_s`` count from (default: this
    call; the command line gives its process's start).  Raises
    ScenarioError for bad input (before anything starts), RunFailed, or Interrupted (a
    KeyboardInterrupt).
    """
    started_at = time.perf_counter() if started_at is None else started_at
    given = {"model": model, "dataset": dataset, "strategy": strategy, "update": update}
    if resume is not None:
        chosen = _resumed(Path(resume), scenario, out, set, given)
    else:
        chosen = from_table(Scenario, with_objects(_table(scenario, set), given))
    console = console or Console(stderr=True, highlight=False)
    early = cluster.early(chosen.resources.uses_gpu, verbose)
    with stopping.handled(), cluster.started_early(early, wait_for_shutdown):
        folder = Path(resume) if resume is not None else (Path(out) if out is not None else None)
        timing = Timing(started_at, wait_for_shutdown)
        return _run_job(chosen, folder, data_dir, resume is not None, console, verbose, timing)


def compare(
    scenario: ScenarioLike = None,
    *,
    strategies: Sequence[object] = (),
    seeds: Sequence[int] | str | None = None,
    out: str | Path | None = None,
    set: Sequence[str] = (),
    model: object = None,
    dataset: object = None,
    update: object = None,
    data_dir: str | Path | None = None,
    resume: str | Path | None = None,
    console: Console | None = None,
    verbose: bool = False,
) -> Comparison:
    """Run the scenario under each strategy and seed, on the same partitions and samples.

    ``strategies``: names as ``fedsim compare --strategy`` takes them (``"fedprox:proximal_mu=0.01"``),
    strategy classes or functions, or VariantConfig objects; none: the scenario's
    ``[[compare.variants]]``.  ``seeds``: none: ``compare.seeds``, else the scenario's seed.
    ``resume``: a stopped comparison's folder, finished as planned (give the same Python
    objects it ran with, if any): runs that ended are kept, a stopped one goes on, the rest run.
    """
    from fedsim.sim import sweep

    given = {"model": model, "dataset": dataset, "update": update}
    if resume is not None:
        folder = Path(resume)
        plan = _resumed_plan(folder, scenario, strategies, seeds, out, set, given)
    else:
        table = with_objects(_table(scenario, set), given)
        base = from_table(Scenario, table)
        runs = tuple(comparison_plan(table, list(strategies), seeds))
        plan = sweep.Plan(runs, base.name, base.evaluation.target_accuracy)
        folder = (
            Path(out)
            if out is not None
            else Path("runs") / f"{base.name}-compare-{datetime.now():%Y%m%d-%H%M%S}"
        )
        sweep.check(plan.runs, folder)
        sweep.save_plan(plan, folder)
    console = console or Console(stderr=True, highlight=False)
    lock = RunLock.take(folder, "--resume" if resume is not None else "--out")  # one comparison per folder
    try:
        with (
            stopping.handled(),
            cluster.started_early(cluster.early(plan.runs[0].scenario.resources.uses_gpu, verbose)),
        ):
            return _compare_all(plan, folder, data_dir, console, verbose, resume is not None)
    finally:
        lock.release()


def _compare_all(
    plan: sweep.Plan, folder: Path, data_dir: str | Path | None, console: Console, verbose: bool, resume: bool
) -> Comparison:
    from fedsim.sim import sweep

    results: list[Any] = []
    done: list[RunResult] = []
    try:
        for result in sweep.run_all(plan.runs, folder, _text(data_dir), console, verbose, resume):
            results.append(result)
            run = plan.runs[len(done)]
            done.append(RunResult(folder / run.folder, result.label, result.seed, result.error))
    except KeyboardInterrupt as stop:
        if results:
            sweep.report(results, folder, plan.title, plan.target)
        hint = f"fedsim compare --resume {folder} goes on with the rest"
        raise Interrupted(folder, f"the {len(results)} finished runs are in {folder} ({hint})") from stop
    sweep.report(results, folder, plan.title, plan.target)
    return Comparison(folder, tuple(done))


def _resumed_plan(
    folder: Path,
    scenario: ScenarioLike,
    strategies: Sequence[object],
    seeds: object,
    out: object,
    overrides: Sequence[str],
    given: dict[str, object],
) -> sweep.Plan:
    """The plan a stopped comparison wrote; the objects given are registered for its runs."""
    from fedsim.sim import sweep

    named = [s for s in strategies if isinstance(s, str | VariantConfig)]
    extra = [n for n, v in (("SCENARIO", scenario), ("--strategy", named), ("--seeds", seeds)) if v]
    extra += [n for n, v in (("--set", overrides), ("--out", out)) if v]
    if extra:
        raise ScenarioError("--resume", f"finishes DIR/{sweep.PLAN_FILE} as planned; drop {', '.join(extra)}")
    if not folder.is_dir():
        raise ScenarioError("--resume", f"{folder} is not a comparison folder")
    own_files.refuse_links(folder, "--resume")
    for thing in [*given.values(), *strategies]:
        if thing is not None:
            objects.register_object(thing)
    return sweep.load_plan(folder)


def comparison_plan(
    table: dict[str, Any], strategies: list[object], seeds: Sequence[int] | str | None
) -> list[Run]:
    """The given variants and seeds, else the scenario's [compare] section."""
    scenario = from_table(Scenario, table)
    if strategies:
        variants = [(_variant(s), f"--strategy {_shown(s)!r}") for s in strategies]
    else:
        variants = [(v, f"compare.variants[{i}]") for i, v in enumerate(scenario.compare.variants)]
    if isinstance(seeds, str):
        chosen: tuple[int, ...] = parse_seeds(seeds)
    else:
        chosen = tuple(seeds) if seeds is not None else scenario.compare.seeds or (scenario.seed,)
    return plan(table, variants, chosen)


def with_objects(table: dict[str, Any], given: dict[str, object]) -> dict[str, Any]:
    """``table`` naming the given plug-ins: a name as it is, a Python object registered by its
    import path (fedsim/scenario/plugins.py)."""
    where = {"model": ("model", "name"), "dataset": ("data", "dataset"), "strategy": ("strategy", "name")}
    where["update"] = ("client", "update")
    for kind, thing in given.items():
        if thing is None:
            continue
        section, key = where[kind]
        name = thing if isinstance(thing, str) else objects.register_object(thing)
        table = {**table, section: {**_section(table, section), key: name}}
    return table


def _section(table: dict[str, Any], name: str) -> dict[str, Any]:
    section = table.get(name, {})
    if not isinstance(section, dict):
        raise ScenarioError(name, f"expected a table, got {section!r}")
    return section


def _variant(strategy: object) -> VariantConfig:
    if isinstance(strategy, VariantConfig):
        return strategy
    if isinstance(strategy, str):
        return VariantConfig(strategy=strategy)
    return VariantConfig(strategy=objects.register_object(strategy), label=_shown(strategy))


def _shown(strategy: object) -> str:
    return strategy if isinstance(strategy, str) else str(getattr(strategy, "__name__", strategy))


def _table(scenario: ScenarioLike, overrides: Sequence[str]) -> dict[str, Any]:
    if isinstance(scenario, Scenario):
        return parse_table(scenario.to_toml(), tuple(overrides)) if overrides else to_table(scenario)
    return files.scenario_table(scenario, tuple(overrides))


def _text(path: str | Path | None) -> str | None:
    return None if path is None else str(path)


def _resumed(
    folder: Path, scenario: ScenarioLike, out: object, overrides: Sequence[str], given: dict[str, object]
) -> Scenario:
    """The scenario a stopped run recorded; a resume continues it unchanged."""
    extra = [n for n, v in (("SCENARIO", scenario), ("--set", overrides), ("--out", out)) if v]
    if extra:
        raise ScenarioError(
            "--resume", f"continues RUN_DIR/{SCENARIO_FILE} as it is; drop {', '.join(extra)}"
        )
    if not (folder / SCENARIO_FILE).is_file():
        raise ScenarioError("--resume", f"{folder} is not a run folder (no {SCENARIO_FILE} in it)")
    own_files.refuse_links(folder, "--resume")
    table = parse_table(read_text(folder / SCENARIO_FILE))
    if with_objects(table, given) != table:  # the run's names: the objects must be the same ones
        raise ScenarioError("--resume", "the Python objects given are not the ones the run used")
    return from_table(Scenario, table)


def _run_job(
    scenario: Scenario,
    out: Path | None,
    data_dir: str | Path | None,
    resume: bool,
    console: Console,
    verbose: bool,
    timing: Timing,
) -> RunResult:
    from fedsim.results.progress import describe_data, print_summary, reporter
    from fedsim.sim import engine  # here: Flower and Ray import slowly, and Ray is starting meanwhile
    from fedsim.sim.divergence import Diverged
    from fedsim.sim.exchange import RunError

    try:
        job = engine.prepare(scenario, out, _text(data_dir), resume, timing.started_at)
    except ScenarioError:
        raise
    except KeyboardInterrupt as stop:  # while the data loaded: no round began
        raise Interrupted(out or Path("runs"), "stopped before the first round") from stop
    except Exception as error:  # the data or the run folder failed: one line, as for a failed run
        raise RunFailed(describe(error), None) from error
    console.print(describe_data(job.data))
    console.print(f"engine: {engine.actor_plan(job.scenario.resources).describe()}", highlight=False)
    if job.engine_chosen:
        console.print(job.engine_chosen, highlight=False, soft_wrap=True)  # one line in a log
    if job.resume is not None:
        console.print(f"resuming {job.out.path} after round {job.resume.round} of {scenario.rounds}")
    result = RunResult(job.out.path)
    try:
        with reporter(console, job.scenario, job.out.path) as reporting:
            summary = engine.run(job, reporting, verbose, timing.wait_for_shutdown)
    except KeyboardInterrupt as stop:
        raise Interrupted(
            job.out.path, f"finished rounds are in {job.out.path}{resume_hint(job.out.path)}"
        ) from stop
    except Exception as error:  # a failed run: say why in one line, keep what was recorded
        problem = one_line(str(error)) if isinstance(error, RunError) else describe(error)
        raise RunFailed(problem, result, resumable=not isinstance(error, Diverged)) from error
    print_summary(console, summary, str(job.out.path))
    return result


def resume_hint(out: Path) -> str:
    """How to go on with a stopped run, if it has a checkpoint to go on from."""
    from fedsim.sim.checkpoint import CHECKPOINT_DIR, MANIFEST

    if not (out / CHECKPOINT_DIR / MANIFEST).is_file():  # stopped before its first round
        return ""
    return f" (fedsim run --resume {out} goes on from the last one)"
