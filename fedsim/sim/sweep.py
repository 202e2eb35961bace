"""``fedsim compare``: run every planned (variant, seed) in turn, then the table and figures.

Runs go one after another through :mod:`fedsim.sim.engine`, each into a folder of its
own, so each is an ordinary run folder (``fedsim plot`` and any later tooling read
them alike).  A run that fails is recorded with its error and the rest go on.

The plan (every run's scenario, label, seed and folder) is written first, as ``plan.json``:
``fedsim compare --resume DIR`` reads it, keeps the runs that ended (completed, or failed
for a reason of their own), resumes an interrupted or killed one from its checkpoint
(fedsim/sim/checkpoint.py), runs those not begun, then writes the table over all of them.
"""

from __future__ import annotations

import json
import shutil
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from fedsim.results import comparison, outdir, plots
from fedsim.results.progress import reporter
from fedsim.results.run_dir import METRICS_FILE, SCENARIO_FILE, SUMMARY_FILE
from fedsim.results.runlock import LOCK_FILE
from fedsim.results.statetree import write_atomic
from fedsim.scenario.files import parse_scenario, read_text
from fedsim.scenario.tables import ScenarioError
from fedsim.scenario.variants import Run
from fedsim.sim import checkpoint, engine, preflight
from fedsim.sim.server import RunError

TABLE_MD, TABLE_CSV, PLAN_FILE = "comparison.md", "comparison.csv", "plan.json"
PLAN_FORMAT = 1


@dataclass(frozen=True)
class Plan:
    """A comparison: its runs, in order, and what its table is titled and counts rounds to."""

    runs: tuple[Run, ...]
    title: str
    target: float | None


def save_plan(plan: Plan, out: Path) -> None:
    """``out/plan.json``, before the first run starts."""
    runs = [
        {
            "label": r.label,
            "seed": r.seed,
            "folder": r.folder,
            "where": r.where,
            "scenario": r.scenario.to_toml(),
        }
        for r in plan.runs
    ]
    table = {"format": PLAN_FORMAT, "title": plan.title, "target": plan.target, "runs": runs}
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / PLAN_FILE, json.dumps(table, indent=1).encode())


def load_plan(out: Path) -> Plan:
    """The plan a comparison in ``out`` wrote; ScenarioError (``--resume``) if there is none that reads."""
    path = out / PLAN_FILE
    if not path.is_file():
        raise ScenarioError("--resume", f"{out} is not a comparison folder (no {PLAN_FILE} in it)")
    try:
        table = json.loads(read_text(path))
        if table.get("format") != PLAN_FORMAT:
            raise ValueError(f"format {table.get('format')!r}, expected {PLAN_FORMAT}")
        runs = tuple(_planned(entry) for entry in table["runs"])
        target = table["target"]
        return Plan(runs, str(table["title"]), None if target is None else float(target))
    except ScenarioError as error:
        raise ScenarioError("--resume", f"{path}: {error}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ScenarioError("--resume", f"{path}: unreadable ({error})") from None


def _planned(entry: dict[str, object]) -> Run:
    folder = str(entry["folder"])
    if Path(folder).name != folder or folder in ("", ".", ".."):  # a run's folder is inside the comparison's
        raise ValueError(f"run folder {folder!r} is not a plain name")
    scenario = parse_scenario(str(entry["scenario"]), source=f"run {folder}")
    seed = entry["seed"]
    if not isinstance(seed, int):
        raise ValueError(f"seed {seed!r}")
    return Run(str(entry["label"]), seed, scenario, folder, str(entry["where"]))


def check(runs: Sequence[Run], out: Path) -> None:
    """What would make every run fail, refused before the first starts (and before Ray starts)."""
    outdir.check_new(out, "--out")
    for run in runs:
        engine.check_resources(run.scenario)
        try:
            preflight.bound(run.scenario)  # each variant's plug-ins take their params
        except ScenarioError as error:
            raise ScenarioError(run.where, str(error)) from error.__cause__


def run_all(
    runs: Sequence[Run],
    out: Path,
    data_dir: str | None,
    console: Console,
    verbose: bool = False,
    resume: bool = False,
) -> Iterator[comparison.RunResult]:
    """Run each in ``out/<folder>``, yielding its result as it ends (KeyboardInterrupt stops the loop).
    ``resume``: a run that ended is read as it is, a stopped one goes on from its checkpoint."""
    for index, run in enumerate(runs, 1):
        path = out / run.folder
        stage = progress(path) if resume else "new"
        doing = {"new": "", "stopped": " (resumed)", "ended": " (ended earlier: kept)"}[stage]
        console.rule(f"[bold]{index}/{len(runs)}[/] {run.label}, seed {run.seed}{doing}  [dim]{path}[/]")
        error = (
            None if stage == "ended" else _run_one(run, path, data_dir, console, verbose, stage == "stopped")
        )
        result = comparison.load_run(path, run.label, run.seed, error)
        final = comparison.final_accuracy(result.records)
        shown = "-" if final is None else f"{final:.4f}"
        failed = error or result.error
        console.print(
            f"{run.label}, seed {run.seed}: "
            + (f"[red]failed:[/] {failed}" if failed else f"final accuracy {shown}")
        )
        yield result


def progress(path: Path) -> str:
    """Where the run in ``path`` stands: "new" (not begun: its folder is made again), "ended"
    (completed, or failed for a reason of its own, which would fail it again), or "stopped"
    (interrupted or killed after its first checkpoint: it goes on from there)."""
    if (path / SUMMARY_FILE).is_file():
        summary = json.loads(read_text(path / SUMMARY_FILE))
        if summary.get("status") == "completed" or summary.get("error") != "interrupted":
            return "ended"
    if (path / checkpoint.CHECKPOINT_DIR / checkpoint.MANIFEST).is_file():
        return "stopped"
    _clear_unstarted(path)
    return "new"


# What a run leaves before its first checkpoint: no round of it is lost by removing it.
UNSTARTED = {SCENARIO_FILE, METRICS_FILE, LOCK_FILE, SUMMARY_FILE, checkpoint.CHECKPOINT_DIR}


def _clear_unstarted(path: Path) -> None:
    """Remove what a run killed before its first checkpoint left, to run it again."""
    if not path.exists():
        return
    rows = path / METRICS_FILE
    saved = [p for p in (path / checkpoint.CHECKPOINT_DIR).rglob("*") if not p.is_dir()]
    if {p.name for p in path.iterdir()} - UNSTARTED or saved or (rows.is_file() and rows.stat().st_size):
        raise ScenarioError(
            "--resume", f"{path}: an unfinished run without a checkpoint, holding other files; move it away"
        )
    shutil.rmtree(path)


def _run_one(
    run: Run, path: Path, data_dir: str | None, console: Console, verbose: bool, resume: bool = False
) -> str | None:
    """Run one scenario (``resume``: go on with the stopped one in ``path``); its error in one line."""
    try:
        scenario = parse_scenario(read_text(path / SCENARIO_FILE)) if resume else run.scenario
        job = engine.prepare(scenario, path, data_dir, resume)
        if job.resume is not None:
            console.print(f"resuming {path} after round {job.resume.round} of {scenario.rounds}")
        with reporter(console, job.scenario, job.out.path) as reporting:
            engine.run(job, reporting, verbose=verbose)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as error:  # one variant crashing must not stop the others
        if verbose:
            traceback.print_exc()
        return (
            str(error) if isinstance(error, (RunError, ScenarioError)) else f"{type(error).__name__}: {error}"
        )
    return None


def report(
    results: Sequence[comparison.RunResult], out: Path, title: str, target: float | None
) -> list[Path]:
    """Write the table (markdown and CSV) and the figures into ``out``; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    rows = comparison.comparison(results, target)
    write_atomic(out / TABLE_MD, (f"# {title}\n\n" + comparison.to_markdown(rows, target)).encode())
    write_atomic(out / TABLE_CSV, comparison.to_csv(rows, target).encode())
    figures = plots.write_figures(results, out, title)
    return [out / TABLE_MD, out / TABLE_CSV, *figures]
