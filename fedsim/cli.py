"""``fedsim``: run, check and compare scenario files; plot finished runs.

Exit codes: 0 done, 1 the run failed, 2 bad input (one line naming the key), 130 interrupted.
"""

from __future__ import annotations

import argparse
import signal
import sys
import traceback
from datetime import datetime
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from rich.console import Console

from fedsim import cluster, deploy_args, deploy_cli, outdir
from fedsim.config import ScenarioError, count, describe, from_table, one_line
from fedsim.privacy_config import guarantee
from fedsim.scenario import DataConfig, Scenario, VariantConfig, parse_table, read_text
from fedsim.variants import Run, parse_seeds, plan

if TYPE_CHECKING:  # torch loads only for a run: `fedsim validate` stays quick
    from fedsim.data import FederatedData
    from fedsim.server import Job

DEFAULT_SCENARIO = "quickstart.toml"  # packaged with fedsim: synthetic data, runs offline

EPILOG = """\
examples:
  fedsim run                                     # the built-in quickstart (offline, ~1 min)
  fedsim run scenarios/mnist_cnn_iid.toml --out runs/a --set rounds=5 --set client.lr=0.05
  fedsim validate scenarios/mnist_cnn_shards.toml --set data.num_clients=50
  fedsim run scenarios/shakespeare_lstm.toml --set rounds=2 --set model.hidden_size=64
  fedsim compare scenarios/compare_robust.toml --set rounds=3
  fedsim compare --strategy fedavg --strategy fedprox:proximal_mu=0.01 --seeds 0,1,2
  fedsim plot runs/compare_robust-compare-20250101-120000

data: MNIST (MNIST/raw) and text (data.path, e.g. shakespeare/tinyshakespeare.txt) are read
from the first of --data-dir, data.root, $FEDSIM_DATA_DIR, ~/.cache/fedsim that holds them
(MNIST is downloaded there when missing and online)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")  # one line, no usage dump


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="fedsim",
        description="Federated-learning simulation on Flower + Ray.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = commands.add_parser(
        "run", help="run a scenario", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    deploy_args.add_scenario_args(run)
    run.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="results folder, new or empty (default: runs/<name>-<timestamp>)",
    )
    run.add_argument(
        "--data-dir", metavar="DIR", help="data root holding MNIST/raw or the text of data.path (read only)"
    )
    run.add_argument(
        "--resume",
        type=Path,
        metavar="RUN_DIR",
        help="go on with a stopped run from its last complete round (its scenario.toml, unchanged)",
    )
    run.add_argument("-v", "--verbose", action="store_true", help="show Flower's and Ray's logs")

    validate = commands.add_parser("validate", help="check a scenario without running it")
    deploy_args.add_scenario_args(validate)

    compare = commands.add_parser(
        "compare",
        help="run a scenario under several strategies and seeds: table and figures",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    deploy_args.add_scenario_args(compare)
    compare.add_argument(
        "--strategy",
        dest="strategies",
        action="append",
        default=[],
        metavar="NAME[:KEY=VALUE,...]",
        help="a variant, e.g. fedavg or fedadam:eta=0.01 (repeatable; default: [[compare.variants]])",
    )
    compare.add_argument(
        "--seeds", metavar="LIST", help="e.g. 0,1,2 (default: compare.seeds, else the scenario's seed)"
    )
    compare.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="new or empty folder (default: runs/<name>-compare-<timestamp>)",
    )
    compare.add_argument("--data-dir", metavar="DIR", help="folder holding MNIST/raw (read only)")
    compare.add_argument("-v", "--verbose", action="store_true", help="show Flower's and Ray's logs")

    plot = commands.add_parser("plot", help="redraw accuracy.png and loss.png from finished runs")
    plot.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="run folders, or folders of them")
    plot.add_argument(
        "--out", type=Path, metavar="DIR", help="where to write (default: the one RUN_DIR given)"
    )
    deploy_cli.add_commands(commands)  # certs, server, client, submit, launch
    return parser


def read_table(path: str | None, overrides: list[str]) -> dict[str, Any]:
    """The scenario file (or the built-in one) as a table, with the overrides applied."""
    if path is None:
        text = files("fedsim").joinpath(DEFAULT_SCENARIO).read_text(encoding="utf-8")
        return parse_table(text, tuple(overrides), source=DEFAULT_SCENARIO)
    return parse_table(read_text(path), tuple(overrides), source=path)


def read_scenario(path: str | None, overrides: list[str]) -> Scenario:
    return from_table(Scenario, read_table(path, overrides))


def describe_clients(data: DataConfig) -> str:
    """The client count, or the rule the data will apply where it decides the count."""
    if data.num_clients is not None:
        return f"{data.num_clients} clients"
    unit = "role" if data.dataset == "shakespeare" else "file"
    how = "" if data.partition == "natural" else f", {data.partition}-resampled"
    return (
        f"one client per {unit} with >= {data.min_samples} training windows{how} "
        "(counted when the data loads)"
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console(stderr=True, highlight=False)
    if args.command in ("run", "compare"):
        # `kill` and service managers send SIGTERM: stop as on Ctrl-C, the finished rounds kept.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        if "handler" in args:  # a deployment command
            return deploy_cli.run(args)
        if args.command == "plot":
            return _plot(args, console)
        if args.command == "run" and args.resume is not None:
            return _run(resumed_scenario(args), args, console)
        table = read_table(args.scenario, args.overrides)
        scenario = from_table(Scenario, table)
        if args.command == "validate":
            console.print(
                f"ok: {scenario.name}: {describe_clients(scenario.data)}, "
                f"{scenario.strategy.name}, {scenario.model.name}, {count(scenario.rounds, 'round')}"
            )
            if scenario.privacy is not None and scenario.data.num_clients is not None:
                console.print(guarantee(scenario, scenario.data.num_clients))
            if scenario.compare.variants:
                runs = comparison_plan(table, scenario, [], None)
                console.print(
                    f"ok: compare: {len(runs)} runs ({', '.join(dict.fromkeys(r.label for r in runs))})"
                )
            return 0
        if args.command == "compare":
            return _compare(table, scenario, args, console)
        return _run(scenario, args, console)
    except ScenarioError as error:
        print(f"fedsim: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a file it could not write or read midway (a full disk): one line, no traceback
        print(f"fedsim: error: {describe(error)}", file=sys.stderr)
        return 1


def resumed_scenario(args: argparse.Namespace) -> Scenario:
    """The scenario a stopped run recorded; a resume continues it unchanged."""
    from fedsim.results import SCENARIO_FILE  # here: it loads torch, which validate does without

    given = [
        name
        for name, value in (("SCENARIO", args.scenario), ("--set", args.overrides), ("--out", args.out))
        if value
    ]
    if given:
        raise ScenarioError(
            "--resume", f"continues RUN_DIR/{SCENARIO_FILE} as it is; drop {', '.join(given)}"
        )
    path: Path = args.resume
    if not (path / SCENARIO_FILE).is_file():
        raise ScenarioError("--resume", f"{path} is not a run folder (no {SCENARIO_FILE} in it)")
    return read_scenario(str(path / SCENARIO_FILE), [])


def comparison_plan(
    table: dict[str, Any], scenario: Scenario, strategies: list[str], seeds: str | None
) -> list[Run]:
    """The command line's variants and seeds if given, else the scenario's [compare] section."""
    if strategies:
        variants = [(VariantConfig(strategy=s), f"--strategy {s!r}") for s in strategies]
    else:
        variants = [(v, f"compare.variants[{i}]") for i, v in enumerate(scenario.compare.variants)]
    chosen = parse_seeds(seeds) if seeds is not None else scenario.compare.seeds or (scenario.seed,)
    return plan(table, variants, chosen)


def _run(scenario: Scenario, args: argparse.Namespace, console: Console) -> int:
    with cluster.started_early(cluster.early(scenario.resources.uses_gpu, args.verbose)):
        return _run_job(scenario, args, console)


def _run_job(scenario: Scenario, args: argparse.Namespace, console: Console) -> int:
    from fedsim import engine  # here, not at the top: Flower and Ray import slowly; validate needs neither
    from fedsim.divergence import Diverged
    from fedsim.exchange import RunError
    from fedsim.progress import ConsoleReporter, print_summary

    resume = getattr(args, "resume", None)
    try:
        job = engine.prepare(scenario, resume or args.out, args.data_dir, resume=resume is not None)
    except ScenarioError:
        raise
    except Exception as error:  # the data or the run folder failed: one line, as for a failed run
        if args.verbose:
            traceback.print_exc()
        print(f"fedsim: run failed before it started: {describe(error)}", file=sys.stderr)
        return 1
    console.print(describe_data(job.data))
    console.print(f"engine: {engine.actor_plan(job.scenario.resources).describe()}", highlight=False)
    if job.resume is not None:
        done = job.resume.round
        console.print(f"resuming {job.out.path} after round {done} of {scenario.rounds}")
    try:
        with ConsoleReporter(console) as reporter:
            summary = engine.run(job, reporter, verbose=args.verbose)
    except KeyboardInterrupt:
        print(
            f"fedsim: interrupted; finished rounds are in {job.out.path}{_resume_hint(job)}", file=sys.stderr
        )
        return 130
    except Exception as error:  # a failed run: say why in one line, keep what was recorded
        if args.verbose:
            traceback.print_exc()
        problem = one_line(str(error)) if isinstance(error, RunError) else describe(error)
        hint = "" if isinstance(error, Diverged) else _resume_hint(job)  # a resume would diverge again
        print(f"fedsim: run failed: {problem}; finished rounds are in {job.out.path}{hint}", file=sys.stderr)
        return 1
    print_summary(console, summary, str(job.out.path))
    return 0


def _resume_hint(job: Job) -> str:
    from fedsim.checkpoint import CHECKPOINT_DIR, MANIFEST

    if not (job.out.path / CHECKPOINT_DIR / MANIFEST).is_file():  # stopped before its first round
        return ""
    return f" (fedsim run --resume {job.out.path} goes on from the last one)"


def describe_data(data: FederatedData) -> str:
    """What the data came to, with the accuracy a model must beat to have learnt anything."""
    vocab = f", {len(data.vocab)} token ids" if data.vocab is not None else ""
    return (
        f"data: {len(data.clients)} clients{vocab}, {len(data.test)} test samples; always guessing "
        f"the most frequent target scores {data.majority_accuracy():.4f}"
    )


def _compare(table: dict[str, Any], scenario: Scenario, args: argparse.Namespace, console: Console) -> int:
    runs = comparison_plan(table, scenario, args.strategies, args.seeds)
    out: Path = args.out or Path("runs") / f"{scenario.name}-compare-{datetime.now():%Y%m%d-%H%M%S}"
    outdir.check_new(out, "--out")  # before Ray starts and the first variant runs
    with cluster.started_early(cluster.early(scenario.resources.uses_gpu, args.verbose)):
        return _compare_runs(scenario, runs, out, args, console)


def _compare_runs(
    scenario: Scenario, runs: list[Run], out: Path, args: argparse.Namespace, console: Console
) -> int:
    from fedsim import sweep

    sweep.check(runs, out)
    target = scenario.evaluation.target_accuracy
    results = []
    try:
        for result in sweep.run_all(runs, out, args.data_dir, console, verbose=args.verbose):
            results.append(result)
    except KeyboardInterrupt:
        if results:
            sweep.report(results, out, scenario.name, target)
        print(f"fedsim: interrupted; the {len(results)} finished runs are in {out}", file=sys.stderr)
        return 130
    written = sweep.report(results, out, scenario.name, target)
    print((out / sweep.TABLE_MD).read_text(encoding="utf-8"))  # the result, on stdout
    console.print("wrote " + ", ".join(str(p) for p in written))
    failed = sum(r.error is not None for r in results)
    if failed:
        print(f"fedsim: {failed} of {len(results)} runs failed; see {out / sweep.TABLE_MD}", file=sys.stderr)
        return 1
    return 0


def _plot(args: argparse.Namespace, console: Console) -> int:
    from fedsim import compare, plots

    folders = [f for run_dir in args.runs for f in _run_folders(run_dir)]
    if args.out is None and len(args.runs) > 1:
        raise ScenarioError("--out", "several RUN_DIRs given: say where the figures go")
    out: Path = args.out or args.runs[0]
    outdir.check_writable(out, "--out")
    results = [compare.load_run(folder) for folder in folders]
    for note in (r.note for r in results if r.note):  # e.g. a killed run's last row, cut short
        print(f"fedsim: warning: {note}", file=sys.stderr)
    title = args.runs[0].resolve().name if len(args.runs) == 1 else out.resolve().name
    written = plots.write_figures(results, out, title)
    console.print(f"{len(folders)} runs; wrote " + ", ".join(str(p) for p in written))
    return 0


def _run_folders(path: Path) -> list[Path]:
    """``path`` if it is a run folder, else the run folders directly inside it."""
    from fedsim.results import METRICS_FILE

    if (path / METRICS_FILE).is_file():
        return [path]
    inside = sorted(p for p in path.iterdir() if (p / METRICS_FILE).is_file()) if path.is_dir() else []
    if not inside:
        raise ScenarioError(str(path), f"no {METRICS_FILE} in it or in the folders directly inside it")
    return inside


if __name__ == "__main__":
    sys.exit(main())
