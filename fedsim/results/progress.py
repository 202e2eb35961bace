"""What the user sees while a run goes: a line per round, a live bar, a final summary."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from fedsim.data import FederatedData
from fedsim.results.per_client import GLOBAL, PERSONAL
from fedsim.results.records import RoundRecord, Summary
from fedsim.results.tensorboard import TensorBoardLog
from fedsim.scenario.describe import guarantee
from fedsim.scenario.sections import Scenario
from fedsim.scenario.tables import count

WIDTH = 80  # a log file's line, and a terminal that is no wider


def describe(record: RoundRecord) -> str:
    """The round in lines of at most 80 characters: the usual numbers first, the rarer ones
    (failures, stragglers, federated evaluation, epsilon, Ray nodes) on a second line if need be."""
    main = [f"round {record.round:>3}"]
    if record.accuracy is not None and record.loss is not None:
        main.append(f"acc {record.accuracy:.4f} loss {record.loss:.4f}")
    if record.train_loss is not None:
        main.append(f"train {record.train_loss:.4f}")
    main.append(f"{record.clients_sampled} clients")
    main.append(f"{_short(record.bytes_sent / 1e6)}/{_short(record.bytes_received / 1e6)} MB")
    main.append(f"{_short(record.round_time_s)}+{_short(record.eval_time_s)} s")
    more = []
    if record.fed_accuracy is not None:
        more.append(f"fed acc {record.fed_accuracy:.4f}")
    more.extend(_per_client(record.extra))
    if record.clients_failed:
        more.append(f"{record.clients_failed} failed")
    if record.stragglers:
        more.append(f"{record.stragglers} straggling")
    if record.clients_late:
        more.append(f"{record.clients_late} late (virtual clock {_short(record.virtual_time_s)} s)")
    if record.retries:
        more.append(f"{record.retries} {'retry' if record.retries == 1 else 'retries'}")
    if record.epsilon is not None:
        more.append(f"epsilon {record.epsilon:.4g}")
    if len(record.client_nodes) > 1:  # a cluster's: one node is the usual, and says nothing
        more.append(f"on {len(record.client_nodes)} Ray nodes")
    line = _fit(main)
    if not more:
        return line
    joined = _fit([line, *more])
    return joined if len(joined) <= WIDTH else line + "\n" + _fit(["         ", *more])


def _per_client(extra: dict[str, float]) -> list[str]:
    """Per-client evaluation's mean and worst 10 %: the global model's, then the personal models'."""
    parts = []
    for prefix, name in ((GLOBAL, "clients"), (PERSONAL, "personal")):
        mean, worst = extra.get(f"{prefix}_mean"), extra.get(f"{prefix}_worst10")
        if mean is not None and worst is not None:
            parts.append(f"{name} {mean:.4f} (worst 10% {worst:.4f})")
    return parts


def _short(value: float) -> str:
    """One decimal below 100, none above: the width a number takes stays small."""
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _fit(parts: list[str]) -> str:
    """Two spaces between the parts, or one where two would pass the width."""
    wide = "  ".join(parts)
    return wide if len(wide) <= WIDTH else " ".join(parts)


def describe_data(data: FederatedData) -> str:
    """What the data came to, with the accuracy a model must beat to have learnt anything."""
    vocab = f", {len(data.vocab)} token ids" if data.vocab is not None else ""
    return (
        f"data: {len(data.clients)} clients{vocab}, {len(data.test)} test samples; always guessing "
        f"the most frequent target scores {data.majority_accuracy():.4f}"
    )


def privacy_line(scenario: Scenario, population: int) -> str | None:
    """The run's privacy guarantee in one sentence, or None without ``[privacy]``."""
    return guarantee(scenario, population) if scenario.privacy is not None else None


def reporter(console: Console, scenario: Scenario, run_dir: Path) -> ConsoleReporter:
    """The console's reporter for a run, writing TensorBoard logs too where the scenario asks."""
    return ConsoleReporter(console, TensorBoardLog(run_dir) if scenario.results.tensorboard else None)


class ConsoleReporter:
    """Rich progress on stderr; a context manager so the bar is always cleared."""

    def __init__(self, console: Console | None = None, tensorboard: TensorBoardLog | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.tensorboard = tensorboard
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self.task = self.progress.add_task("starting Ray and the clients", total=None)

    def __enter__(self) -> ConsoleReporter:
        self.progress.start()
        self._log = _ConsoleLog(self.console).attach()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._log.detach()
        self.progress.stop()
        if self.tensorboard is not None:
            self.tensorboard.close()

    def started(self, scenario: Scenario, population: int, notes: Sequence[str] = ()) -> None:
        self.console.print(
            f"[bold]{scenario.name}[/]: {count(population, 'client')}, {scenario.strategy.name}, "
            f"{scenario.model.name} on {scenario.data.dataset} ({scenario.data.partition}), "
            f"{count(scenario.rounds, 'round')}"
        )
        for line in (privacy_line(scenario, population), *notes):
            if line:
                self.console.print(line, highlight=False)
        self.progress.update(self.task, description="rounds", total=scenario.rounds)

    def round_done(self, record: RoundRecord) -> None:
        self.console.print(describe(record), soft_wrap=True)  # never broken at the console's width
        self.progress.update(self.task, completed=record.round)
        if self.tensorboard is not None:
            self.tensorboard.write(record)

    def warn(self, text: str) -> None:
        self.console.print(f"[yellow]warning:[/] {text}")


class _ConsoleLog(logging.Handler):
    """The ``fedsim`` logger's lines on the console while a run goes (the cohort engine's
    worker reports, fedsim/sim/cohort_engine.py); ``flwr run`` has its own handler (fedsim/sim/engine.py)."""

    logger = logging.getLogger("fedsim")

    def __init__(self, console: Console) -> None:
        super().__init__(logging.INFO)
        self.console = console
        self.saved = (self.logger.level, self.logger.propagate)

    def attach(self) -> _ConsoleLog:
        self.logger.addHandler(self)
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False  # once, whatever handlers a library put on the root logger
        return self

    def detach(self) -> None:
        self.logger.removeHandler(self)
        self.logger.setLevel(self.saved[0])
        self.logger.propagate = self.saved[1]

    def emit(self, record: logging.LogRecord) -> None:
        warning = "[yellow]warning:[/] " if record.levelno >= logging.WARNING else ""
        self.console.print(warning + escape(record.getMessage()), highlight=False)


class LogReporter:
    """For ``flwr run``, where the ServerApp's output is a log."""

    log = logging.getLogger("fedsim")

    def started(self, scenario: Scenario, population: int, notes: Sequence[str] = ()) -> None:
        self.log.info(
            "%s: %s, %s", scenario.name, count(population, "client"), count(scenario.rounds, "round")
        )
        for line in (privacy_line(scenario, population), *notes):
            if line:
                self.log.info("%s", line)

    def round_done(self, record: RoundRecord) -> None:
        self.log.info("%s", describe(record))

    def warn(self, text: str) -> None:
        self.log.warning("warning: %s", text)


def print_summary(console: Console, summary: Summary, out_dir: str) -> None:
    def show(value: float | int | None, fmt: str = "{:.4f}") -> str:
        return "-" if value is None else fmt.format(value)

    table = Table(title=f"{summary.name}: {summary.status}", show_header=False)
    table.add_row("rounds completed", str(summary.rounds_completed))
    table.add_row("final accuracy", show(summary.final_accuracy))
    table.add_row(f"best accuracy (round {show(summary.best_round, '{}')})", show(summary.best_accuracy))
    if summary.target_accuracy is not None:
        table.add_row(f"round reaching {summary.target_accuracy:g}", show(summary.round_reached_target, "{}"))
        table.add_row(f"seconds to {summary.target_accuracy:g}", show(summary.time_to_target_s, "{:.1f}"))
    for prefix, name in ((GLOBAL, "client"), (PERSONAL, "personal")):
        stats = summary.clients or {}
        if f"{prefix}_mean" in stats:
            shown = f"{stats[f'{prefix}_mean']:.4f} (worst 10 % {stats[f'{prefix}_worst10']:.4f})"
            table.add_row(f"{name} accuracy, mean over clients", shown)
    if summary.epsilon is not None and summary.delta is not None:
        table.add_row(f"privacy spent (delta {summary.delta:.3g})", f"epsilon {summary.epsilon:.4g}")
    if summary.privacy_stop is not None:
        table.add_row("privacy budget", summary.privacy_stop)
    table.add_row("wall time (s)", show(summary.wall_time_s, "{:.1f}"))
    table.add_row("results", out_dir)
    console.print(table)
