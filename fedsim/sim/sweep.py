"""``fedsim compare``: run every planned (variant, seed) in turn, then the table and figures.

Runs go one after another through :mod:`fedsim.sim.engine`, each into a folder of its
own, so each is an ordinary run folder (``fedsim plot`` and any later tooling read
them alike).  A run that fails is recorded with its error and the rest go on.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path

from rich.console import Console

from fedsim.results import comparison, outdir, plots
from fedsim.results.progress import reporter
from fedsim.results.statetree import write_atomic
from fedsim.scenario.tables import ScenarioError
from fedsim.scenario.variants import Run
from fedsim.sim import engine, preflight
from fedsim.sim.server import RunError

TABLE_MD, TABLE_CSV = "comparison.md", "comparison.csv"


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
    runs: Sequence[Run], out: Path, data_dir: str | None, console: Console, verbose: bool = False
) -> Iterator[comparison.RunResult]:
    """Run each in ``out/<folder>``, yielding its result as it ends (KeyboardInterrupt stops the loop)."""
    for index, run in enumerate(runs, 1):
        path = out / run.folder
        console.rule(f"[bold]{index}/{len(runs)}[/] {run.label}, seed {run.seed}  [dim]{path}[/]")
        error = _run_one(run, path, data_dir, console, verbose)
        result = comparison.load_run(path, run.label, run.seed, error)
        final = comparison.final_accuracy(result.records)
        shown = "-" if final is None else f"{final:.4f}"
        console.print(
            f"{run.label}, seed {run.seed}: "
            + (f"[red]failed:[/] {error}" if error else f"final accuracy {shown}")
        )
        yield result


def _run_one(run: Run, path: Path, data_dir: str | None, console: Console, verbose: bool) -> str | None:
    """Run one scenario; the error as one line if it failed."""
    try:
        job = engine.prepare(run.scenario, path, data_dir)
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
