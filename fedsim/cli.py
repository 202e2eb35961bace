"""``fedsim``: run, check and compare scenario files; plot finished runs.

Exit codes: 0 done, 1 the run failed, 2 bad input (one line naming the key), 130 interrupted
(Ctrl-C), 143 stopped by SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console

from fedsim import api
from fedsim.api import TABLE_MD
from fedsim.deploy import args as deploy_args
from fedsim.deploy import commands as deploy_cli
from fedsim.results import outdir
from fedsim.scenario import files
from fedsim.scenario.describe import guarantee
from fedsim.scenario.sections import Scenario
from fedsim.scenario.tables import ScenarioError, count, describe, from_table
from fedsim.sim import stopping

EPILOG = """\
examples:
  fedsim run                                     # the built-in quickstart (offline, ~1 min)
  fedsim run scenarios/mnist_cnn_iid.toml --out runs/a --set rounds=5 --set client.lr=0.05
  fedsim validate scenarios/mnist_cnn_shards.toml --set data.num_clients=50
  fedsim run scenarios/shakespeare_lstm.toml --set rounds=2 --set model.params.hidden_size=64
  fedsim compare scenarios/compare_robust.toml --set rounds=3
  fedsim compare --strategy fedavg --strategy fedprox:proximal_mu=0.01 --seeds 0,1,2
  fedsim plot runs/compare_robust-compare-20250101-120000
  fedsim data fetch mnist                        # also fashion_mnist, emnist, cifar10 (online)

data: MNIST (MNIST/raw), the other built-in data sets and text (data.params.path, e.g.
shakespeare/tinyshakespeare.txt) are read from the first of --data-dir, data.root,
$FEDSIM_DATA_DIR, ~/.cache/fedsim that holds them; `fedsim data fetch NAME` downloads one there."""


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
        "--data-dir",
        metavar="DIR",
        help="data root (read only) holding the data set's files, e.g. MNIST/raw, or data.params.path's text",
    )
    run.add_argument(
        "--resume",
        type=Path,
        metavar="RUN_DIR",
        help="go on with a stopped run from its last complete round (its scenario.toml, unchanged)",
    )
    run.add_argument("-v", "--verbose", action="store_true", help="show Flower's and Ray's logs")
    _tensorboard(run)
    _debug(run)

    validate = commands.add_parser(
        "validate",
        help="check a scenario without running it: its plug-ins, data and model load and fit",
        description="Check a scenario without running it: the data and model load and fit, every "
        "plug-in is imported and called as a run would (their code runs: validate only files you "
        "would run).",
    )
    deploy_args.add_scenario_args(validate)
    validate.add_argument(
        "--data-dir",
        metavar="DIR",
        help="data root holding the data set's files, e.g. MNIST/raw, or data.params.path's text",
    )
    _debug(validate)

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
    compare.add_argument(
        "--data-dir", metavar="DIR", help="data root holding the data set's files, e.g. MNIST/raw (read only)"
    )
    compare.add_argument(
        "--resume",
        type=Path,
        metavar="DIR",
        help="finish a stopped comparison as planned: ended runs kept, a stopped one resumed, the rest run",
    )
    compare.add_argument("-v", "--verbose", action="store_true", help="show Flower's and Ray's logs")
    _tensorboard(compare)
    _debug(compare)

    plot = commands.add_parser(
        "plot",
        help="redraw the figures (accuracy and loss by round, accuracy by virtual time and by bytes) "
        "from finished runs",
    )
    plot.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="run folders, or folders of them")
    plot.add_argument(
        "--out", type=Path, metavar="DIR", help="where to write (default: the one RUN_DIR given)"
    )
    _data_commands(commands)
    deploy_cli.add_commands(commands)  # certs, server, client, submit, launch
    return parser


def _tensorboard(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--tensorboard",
        action="store_true",
        help="also log every round to RUN_DIR/tensorboard (as results.tensorboard = true)",
    )


def _overrides(args: argparse.Namespace) -> list[str]:
    """``--set`` values, and what a flag sets the same way."""
    return [*args.overrides, *(["results.tensorboard=true"] if args.tensorboard else [])]


def _data_commands(commands: argparse._SubParsersAction[Any]) -> None:
    data = commands.add_parser("data", help="get the built-in data sets' files; see where they are")
    actions = data.add_subparsers(dest="action", metavar="{fetch,list}", required=True, parser_class=_Parser)
    fetch = actions.add_parser(
        "fetch", help="download a data set with torchvision (mnist, fashion_mnist, emnist, cifar10)"
    )
    fetch.add_argument("name", metavar="NAME", help="a built-in data set, e.g. mnist")
    listing = actions.add_parser("list", help="the built-in data sets and the data root holding each")
    for action in (fetch, listing):
        action.add_argument(
            "--data-dir",
            metavar="DIR",
            help="where to put or look for them (default: $FEDSIM_DATA_DIR, else the cache)",
        )


def _debug(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--debug", action="store_true", help="after a one-line error about a plug-in, show its own traceback"
    )


def entry() -> None:
    """The ``fedsim`` command: :func:`main`, then, after ``run`` and ``compare``, exit at once.

    Their results are written and closed by then; what is left is Flower's and Ray's shut-down
    (about 2 s) and the interpreter's own teardown (about 1 s), which the user would wait
    for and nothing needs: a private Ray cluster's processes die with this one
    (fedsim/sim/reaper.py).  Other commands may clean up at exit (temporary folders), so
    they exit as usual.
    """
    args = build_parser().parse_args()
    args.exiting = True
    code = dispatch(args)
    if args.command in ("run", "compare"):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def main(argv: list[str] | None = None) -> int:
    """The command line, for a caller that goes on afterwards (a test, a script)."""
    args = build_parser().parse_args(argv)
    args.exiting = False  # a run waits for Ray to shut down: the caller may start another
    return dispatch(args)


def dispatch(args: argparse.Namespace) -> int:
    """Run the parsed command; its exit code."""
    console = Console(stderr=True, highlight=False)
    try:
        if "handler" in args:  # a deployment command
            return deploy_cli.run(args)
        if args.command == "plot":
            return _plot(args, console)
        if args.command == "validate":
            return _validate(args, console)
        if args.command == "data":
            return _data(args)
        if args.command == "compare":
            return _compare(args, console)
        return _run(args, console)
    except ScenarioError as error:
        print(f"fedsim: error: {error}", file=sys.stderr)
        if getattr(args, "debug", False) and error.__cause__ is not None:  # a plug-in's own error
            traceback.print_exception(error.__cause__)
        return 2
    except api.RunFailed as error:
        if args.verbose and error.__cause__ is not None:
            traceback.print_exception(error.__cause__)
        print(f"fedsim: {error}", file=sys.stderr)
        return 1
    except api.Interrupted as stop:
        print(f"fedsim: {stop}", file=sys.stderr)
        return stopping.exit_code(stop.signum)
    except KeyboardInterrupt:  # outside a run (a plot, a validation): nothing to keep
        print("fedsim: interrupted", file=sys.stderr)
        return 130
    except OSError as error:  # a file it could not write or read midway (a full disk): one line, no traceback
        print(f"fedsim: error: {describe(error)}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, console: Console) -> int:
    if args.resume is not None:
        if args.tensorboard:
            raise ScenarioError("--tensorboard", "a resume keeps the run's results.tensorboard as it was")
        api.run(args.scenario, set=args.overrides, out=args.out, resume=args.resume, **_fast(args, console))
    else:
        api.run(api.load_scenario(args.scenario, _overrides(args)), out=args.out, **_fast(args, console))
    return 0


def _fast(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    """A run's options: its clock starts with this process (time to accuracy counts the
    command's start-up); about to exit (:func:`entry`), it does not wait for Ray to shut down."""
    started_at = process_start() if args.exiting else None  # a caller's process is not the run's
    return {**_common(args, console), "wait_for_shutdown": not args.exiting, "started_at": started_at}


def process_start() -> float:
    """This process's start as a ``time.perf_counter()`` value (before any import).

    On Linux from the kernel's own count (``/proc/self/stat``, clock ticks since boot, against
    the boot-time clock): to 10 ms, where psutil's ``create_time`` adds the boot time in whole
    seconds and can be up to a second off.
    """
    try:
        with open("/proc/self/stat", encoding="ascii") as stat:
            ticks = int(stat.read().rpartition(")")[2].split()[19])  # field 22, starttime
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):  # not Linux
        import psutil

        age = time.time() - float(psutil.Process().create_time())
    return time.perf_counter() - age


def _compare(args: argparse.Namespace, console: Console) -> int:
    if args.resume is not None:
        if args.tensorboard:
            raise ScenarioError("--tensorboard", "a resume finishes the comparison's runs as planned")
        comparison = api.compare(
            args.scenario,
            strategies=args.strategies,
            seeds=args.seeds,
            out=args.out,
            set=args.overrides,
            resume=args.resume,
            **_common(args, console),
        )
    else:
        table = files.scenario_table(args.scenario, _overrides(args))
        comparison = api.compare(
            from_table(Scenario, table),
            strategies=args.strategies,
            seeds=args.seeds,
            out=args.out,
            **_common(args, console),
        )
    print(comparison.table)  # the result, on stdout
    console.print(
        f"wrote {comparison.out}: {TABLE_MD}, comparison.csv, accuracy.png, loss.png, "
        "accuracy_by_time.png, accuracy_by_bytes.png"
    )
    if comparison.failed:
        failed = f"{comparison.failed} of {len(comparison.runs)} runs failed"
        print(f"fedsim: {failed}; see {comparison.out / TABLE_MD}", file=sys.stderr)
        return 1
    return 0


def _common(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    return {"data_dir": args.data_dir, "console": console, "verbose": args.verbose}


def _validate(args: argparse.Namespace, console: Console) -> int:
    """Load the data and every plug-in once, as a run would before Ray starts."""
    table = files.scenario_table(args.scenario, args.overrides)
    scenario = from_table(Scenario, table)  # a file that fails here fails before torch is imported
    from fedsim.sim import preflight

    checked = preflight.check(scenario, args.data_dir)
    scenario, population = checked.scenario, len(checked.data.clients)
    console.print(
        f"ok: {scenario.name}: {count(population, 'client')}, {scenario.strategy.name}, "
        f"{scenario.model.name} on {scenario.data.dataset}, {count(scenario.rounds, 'round')}"
    )
    if scenario.privacy is not None:
        console.print(guarantee(scenario, population))
    if scenario.compare.variants:
        runs = api.comparison_plan(table, [], None)
        console.print(f"ok: compare: {len(runs)} runs ({', '.join(dict.fromkeys(r.label for r in runs))})")
    return 0


def _data(args: argparse.Namespace) -> int:
    from fedsim.data import fetch

    if args.action == "list":
        for name, where in fetch.listing(args.data_dir):
            print(f"{name:<14} {where}")
        return 0
    try:
        root, downloaded = fetch.fetch(args.name, args.data_dir)
    except fetch.FetchFailed as error:
        print(f"fedsim: {error}", file=sys.stderr)
        return 1
    done = "downloaded into" if downloaded else "already in"
    print(f"{args.name}: {done} {root}", file=sys.stderr)  # unwrapped: a path to copy
    return 0


def _plot(args: argparse.Namespace, console: Console) -> int:
    from fedsim.results import comparison, plots

    folders = [f for run_dir in args.runs for f in _run_folders(run_dir)]
    if args.out is None and len(args.runs) > 1:
        raise ScenarioError("--out", "several RUN_DIRs given: say where the figures go")
    out: Path = args.out or args.runs[0]
    outdir.check_writable(out, "--out")
    results = [comparison.load_run(folder) for folder in folders]
    for note in (r.note for r in results if r.note):  # e.g. a killed run's last row, cut short
        print(f"fedsim: warning: {note}", file=sys.stderr)
    title = args.runs[0].resolve().name if len(args.runs) == 1 else out.resolve().name
    written = plots.write_figures(results, out, title)
    console.print(f"{len(folders)} runs; wrote " + ", ".join(str(p) for p in written))
    return 0


def _run_folders(path: Path) -> list[Path]:
    """``path`` if it is a run folder, else the run folders directly inside it."""
    from fedsim.results.run_dir import METRICS_FILE

    if (path / METRICS_FILE).is_file():
        return [path]
    inside = sorted(p for p in path.iterdir() if (p / METRICS_FILE).is_file()) if path.is_dir() else []
    if not inside:
        raise ScenarioError(str(path), f"no {METRICS_FILE} in it or in the folders directly inside it")
    return inside


if __name__ == "__main__":
    entry()
