"""``fedsim compare``: run every planned (variant, seed) in turn, then the table and figures.

Runs go one after another through :mod:`fedsim.engine`, each into a folder of its
own, so each is an ordinary run folder (``fedsim plot`` and any later tooling read
them alike).  A run that fails is recorded with its error and the rest go on.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path

from rich.console import Console

from fedsim import compare, engine, plots
from fedsim.config import ScenarioError
from fedsim.progress import ConsoleReporter
from fedsim.server import RunError
from fedsim.statetree import write_atomic
from fedsim.variants import Run

TABLE_MD, TABLE_CSV = "comparison.md", "comparison.csv"


def check(runs: Sequence[Run], out: Path) -> None:
    """What would make every run fail, refused before the first starts."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ScenarioError("--out", f"{out} already exists and is not empty; choose another folder")
    for run in runs:
        engine.check_resources(run.scenario)


def run_all(
    runs: Sequence[Run], out: Path, data_dir: str | None, console: Console, verbose: bool = False
) -> Iterator[compare.RunResult]:
    """Run each in ``out/<folder>``, yielding its result as it ends (KeyboardInterrupt stops the loop)."""
    for index, run in enumerate(runs, 1):
        path = out / run.folder
        console.rule(f"[bold]{index}/{len(runs)}[/] {run.label}, seed {run.seed}  [dim]{path}[/]")
        error = _run_one(run, path, data_dir, console, verbose)
        result = compare.load_run(path, run.label, run.seed, error)
        final = compare.final_accuracy(result.records)
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
        with ConsoleReporter(console) as reporter:
            engine.run(job, reporter, verbose=verbose)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as error:  # one variant crashing must not stop the others
        if verbose:
            traceback.print_exc()
        return (
            str(error) if isinstance(error, (RunError, ScenarioError)) else f"{type(error).__name__}: {error}"
        )
    return None


def report(results: Sequence[compare.RunResult], out: Path, title: str, target: float | None) -> list[Path]:
    """Write the table (markdown and CSV) and the figures into ``out``; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    rows = compare.comparison(results, target)
    write_atomic(out / TABLE_MD, (f"# {title}\n\n" + compare.to_markdown(rows, target)).encode())
    write_atomic(out / TABLE_CSV, compare.to_csv(rows, target).encode())
    figures = plots.write_figures(results, out, title)
    return [out / TABLE_MD, out / TABLE_CSV, *figures]
