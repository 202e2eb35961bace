"""``fedsim``: run and check scenario files.

Exit codes: 0 done, 1 the run failed, 2 bad input (one line naming the key), 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from importlib.resources import files
from pathlib import Path
from typing import NoReturn

from rich.console import Console

from fedsim import deploy_cli
from fedsim.config import ScenarioError
from fedsim.scenario import Scenario, load_scenario, parse_scenario

DEFAULT_SCENARIO = "quickstart.toml"  # packaged with fedsim: synthetic data, runs offline

EPILOG = """\
examples:
  fedsim run                                     # the built-in quickstart (offline, ~1 min)
  fedsim run scenarios/mnist_cnn_iid.toml --out runs/a --set rounds=5 --set client.lr=0.05
  fedsim validate scenarios/mnist_cnn_shards.toml --set data.num_clients=50

data: MNIST is read from --data-dir, data.root, $FEDSIM_DATA_DIR, then ~/.cache/fedsim
(downloaded there when missing and online)."""


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
    _add_scenario_args(run)
    run.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="results folder, new or empty (default: runs/<name>-<timestamp>)",
    )
    run.add_argument("--data-dir", metavar="DIR", help="folder holding MNIST/raw (read only)")
    run.add_argument("-v", "--verbose", action="store_true", help="show Flower's and Ray's logs")

    validate = commands.add_parser("validate", help="check a scenario without running it")
    _add_scenario_args(validate)
    deploy_cli.add_commands(commands)  # certs, server, client, submit, launch
    return parser


def _add_scenario_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "scenario",
        nargs="?",
        metavar="SCENARIO",
        help=f"scenario TOML file (default: the built-in {DEFAULT_SCENARIO})",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a scenario key, e.g. --set client.lr=0.05 (repeatable)",
    )


def read_scenario(path: str | None, overrides: list[str]) -> Scenario:
    if path is None:
        text = files("fedsim").joinpath(DEFAULT_SCENARIO).read_text(encoding="utf-8")
        return parse_scenario(text, tuple(overrides), source=DEFAULT_SCENARIO)
    return load_scenario(path, tuple(overrides))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if "handler" in args:  # a deployment command
        return deploy_cli.run(args)
    console = Console(stderr=True, highlight=False)
    try:
        scenario = read_scenario(args.scenario, args.overrides)
        if args.command == "validate":
            console.print(
                f"ok: {scenario.name}: {scenario.data.num_clients} clients, "
                f"{scenario.strategy.name}, {scenario.model.name}, {scenario.rounds} rounds"
            )
            return 0
        return _run(scenario, args, console)
    except ScenarioError as error:
        print(f"fedsim: error: {error}", file=sys.stderr)
        return 2


def _run(scenario: Scenario, args: argparse.Namespace, console: Console) -> int:
    from fedsim import engine  # here, not at the top: Flower and Ray import slowly; validate needs neither
    from fedsim.progress import ConsoleReporter, print_summary

    job = engine.prepare(scenario, args.out, args.data_dir)
    try:
        with ConsoleReporter(console) as reporter:
            summary = engine.run(job, reporter, verbose=args.verbose)
    except KeyboardInterrupt:
        print(f"fedsim: interrupted; finished rounds are in {job.out.path}", file=sys.stderr)
        return 130
    except Exception as error:  # a failed run: say why in one line, keep what was recorded
        if args.verbose:
            traceback.print_exc()
        print(f"fedsim: run failed: {error}; finished rounds are in {job.out.path}", file=sys.stderr)
        return 1
    print_summary(console, summary, str(job.out.path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
