"""``fedsim``: run and check scenario files.

Exit codes: 0 done, 1 the run failed, 2 bad input (one line naming the key), 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from rich.console import Console

from fedsim.config import ScenarioError
from fedsim.scenario import DataConfig, Scenario, load_scenario, parse_scenario

if TYPE_CHECKING:  # torch loads only for a run: `fedsim validate` stays quick
    from fedsim.data import FederatedData

DEFAULT_SCENARIO = "quickstart.toml"  # packaged with fedsim: synthetic data, runs offline

EPILOG = """\
examples:
  fedsim run                                     # the built-in quickstart (offline, ~1 min)
  fedsim run scenarios/mnist_cnn_iid.toml --out runs/a --set rounds=5 --set client.lr=0.05
  fedsim validate scenarios/mnist_cnn_shards.toml --set data.num_clients=50
  fedsim run scenarios/shakespeare_lstm.toml --set rounds=2 --set model.hidden_size=64

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
    _add_scenario_args(run)
    run.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="results folder, new or empty (default: runs/<name>-<timestamp>)",
    )
    run.add_argument(
        "--data-dir", metavar="DIR", help="data root holding MNIST/raw or the text of data.path (read only)"
    )
    run.add_argument("-v", "--verbose", action="store_true", help="show Flower's and Ray's logs")

    validate = commands.add_parser("validate", help="check a scenario without running it")
    _add_scenario_args(validate)
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
    try:
        scenario = read_scenario(args.scenario, args.overrides)
        if args.command == "validate":
            console.print(
                f"ok: {scenario.name}: {describe_clients(scenario.data)}, "
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
    console.print(describe_data(job.data))
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


def describe_data(data: FederatedData) -> str:
    """What the data came to, with the accuracy a model must beat to have learnt anything."""
    vocab = f", {len(data.vocab)} token ids" if data.vocab is not None else ""
    return (
        f"data: {len(data.clients)} clients{vocab}, {len(data.test)} test samples; always guessing "
        f"the most frequent target scores {data.majority_accuracy():.4f}"
    )


if __name__ == "__main__":
    sys.exit(main())
