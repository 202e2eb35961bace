"""The comparison table: per variant, over seeds, from each run's ``metrics.jsonl``.

Final accuracy is over completed runs, best accuracy over every run that evaluated a round
(a run that failed later still reached it), as mean ± sample standard deviation (0 for a
single seed).  Rounds to target are over the runs that reached
``evaluation.target_accuracy``, shown with how many did.  Wall time and bytes are
per run.  Accuracy is the centralized test accuracy, or the federated one when the
scenario evaluates on clients only.  Under per-client evaluation the table adds the last
distribution's mean and worst 10 % over clients, of the global model and of personal models.
"""

from __future__ import annotations

import csv
import io
import json
import math
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedsim.results import per_client
from fedsim.results import rows as metrics_rows
from fedsim.results.records import RoundRecord
from fedsim.results.run_dir import METRICS_FILE, SCENARIO_FILE, SUMMARY_FILE, to_records
from fedsim.scenario.tables import ScenarioError


@dataclass(frozen=True)
class RunResult:
    label: str
    seed: int
    records: tuple[RoundRecord, ...]
    wall_time_s: float | None
    error: str | None = None  # None: the run completed
    note: str | None = None  # what reading it left out (a killed run's last row, cut short)
    clients: tuple[per_client.ClientOutcome, ...] = ()  # the last per-client evaluation's (clients.jsonl)


@dataclass(frozen=True)
class Stat:
    mean: float
    std: float
    n: int  # values (runs) behind it

    def show(self, digits: int = 4) -> str:
        """``mean ± std``; the mean alone for a single run, which has no spread to show."""
        mean = f"{self.mean:.{digits}f}"
        return mean if self.n == 1 else f"{mean} ± {self.std:.{digits}f}"


@dataclass(frozen=True)
class Row:
    label: str
    runs: int
    completed: int
    final_accuracy: Stat | None
    best_accuracy: Stat | None
    reached: int  # completed runs that reached the target
    rounds_to_target: Stat | None  # over those runs
    virtual_time_to_target_s: Stat | None  # on the virtual clock, over those runs
    wall_time_s: Stat | None
    bytes_sent: Stat | None
    bytes_received: Stat | None
    errors: tuple[str, ...]  # "seed 1: why", one per failed run
    # Per-client evaluation's last distribution over the completed runs, by statistic
    # (fedsim/results/per_client.py: client_acc_mean, client_acc_worst10, personal_acc_*).
    clients: dict[str, Stat] = field(default_factory=dict)


# The per-client statistics a table shows, with their column headers.
CLIENT_COLUMNS = {
    "client_acc_mean": "client mean",
    "client_acc_worst10": "client worst 10 %",
    "personal_acc_mean": "personal mean",
    "personal_acc_worst10": "personal worst 10 %",
}


def mean_std(values: Sequence[float]) -> Stat | None:
    """Mean and sample standard deviation (n - 1); None for no values, std 0 for one."""
    if not values:
        return None
    n = len(values)
    mean = sum(values) / n
    if n == 1:
        return Stat(mean, 0.0, 1)
    return Stat(mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)), n)


def accuracy(record: RoundRecord) -> float | None:
    return record.accuracy if record.accuracy is not None else record.fed_accuracy


def final_accuracy(records: Sequence[RoundRecord]) -> float | None:
    """The accuracy of the last evaluated round."""
    return next((a for r in reversed(records) if (a := accuracy(r)) is not None), None)


def best_accuracy(records: Sequence[RoundRecord]) -> float | None:
    return max((a for r in records if (a := accuracy(r)) is not None), default=None)


def rounds_to_target(records: Sequence[RoundRecord], target: float | None) -> int | None:
    """The first round whose accuracy reached ``target``; None if none did."""
    if target is None:
        return None
    return next((r.round for r in records if (a := accuracy(r)) is not None and a >= target), None)


def virtual_time_to_target(records: Sequence[RoundRecord], target: float | None) -> float | None:
    """The virtual clock at the first round whose accuracy reached ``target``; None if none did."""
    reached = rounds_to_target(records, target)
    return next((r.virtual_time_s for r in records if r.round == reached), None)


def variant_row(label: str, runs: Sequence[RunResult], target: float | None) -> Row:
    done = [r for r in runs if r.error is None]
    finals = [a for r in done if (a := final_accuracy(r.records)) is not None]
    bests = [a for r in runs if (a := best_accuracy(r.records)) is not None]  # a failed run's too
    reached = [float(n) for r in done if (n := rounds_to_target(r.records, target)) is not None]
    times = [t for r in done if (t := virtual_time_to_target(r.records, target)) is not None]
    return Row(
        label=label,
        runs=len(runs),
        completed=len(done),
        final_accuracy=mean_std(finals),
        best_accuracy=mean_std(bests),
        reached=len(reached),
        rounds_to_target=mean_std(reached),
        virtual_time_to_target_s=mean_std(times),
        wall_time_s=mean_std([r.wall_time_s for r in done if r.wall_time_s is not None]),
        bytes_sent=mean_std([float(sum(x.bytes_sent for x in r.records)) for r in done]),
        bytes_received=mean_std([float(sum(x.bytes_received for x in r.records)) for r in done]),
        errors=tuple(f"seed {r.seed}: {r.error}" for r in runs if r.error is not None),
        clients=_client_stats(done),
    )


def _client_stats(done: Sequence[RunResult]) -> dict[str, Stat]:
    finals = [per_client.final([r.extra for r in run.records]) or {} for run in done]
    out = {}
    for key in CLIENT_COLUMNS:
        stat = mean_std([f[key] for f in finals if key in f])
        if stat is not None:
            out[key] = stat
    return out


def _client_keys(rows: Sequence[Row]) -> list[str]:
    """The per-client statistics some row has, in the table's order."""
    return [k for k in CLIENT_COLUMNS if any(k in row.clients for row in rows)]


def comparison(results: Sequence[RunResult], target: float | None) -> list[Row]:
    """One row per variant, in the order the variants first appear."""
    labels = list(dict.fromkeys(r.label for r in results))
    return [variant_row(label, [r for r in results if r.label == label], target) for label in labels]


def cells(rows: Sequence[Row], target: float | None) -> tuple[list[str], list[list[str]]]:
    """The table as text: headers and one list of cells per row."""
    headers = ["variant", "runs", "final accuracy", "best accuracy"]
    headers += [f"rounds to {target:g}", f"virtual s to {target:g}"] if target is not None else []
    shown = _client_keys(rows)
    headers += [CLIENT_COLUMNS[k] for k in shown]
    headers += ["wall time (s)", "sent (MB)", "received (MB)", "status"]
    body = []
    for row in rows:
        line = [row.label, str(row.runs), _show(row.final_accuracy), _show(row.best_accuracy)]
        if target is not None:
            line.append(f"{_show(row.rounds_to_target, 1)} ({row.reached}/{row.completed})")
            line.append(_show(row.virtual_time_to_target_s, 1))
        line += [_show(row.clients.get(k)) for k in shown]
        line += [_show(row.wall_time_s, 1), _megabytes(row.bytes_sent), _megabytes(row.bytes_received)]
        line.append("; ".join("failed: " + e for e in row.errors) or "ok")
        body.append(line)
    return headers, body


def to_markdown(rows: Sequence[Row], target: float | None) -> str:
    headers, body = cells(rows, target)
    lines = [headers, ["---"] * len(headers), *body]
    return "\n".join("| " + " | ".join(c.replace("|", "\\|") for c in line) + " |" for line in lines) + "\n"


def to_csv(rows: Sequence[Row], target: float | None) -> str:
    stream = io.StringIO()
    writer = csv.writer(stream, lineterminator="\n")
    stats = (
        "final_accuracy",
        "best_accuracy",
        "rounds_to_target",
        "virtual_time_to_target_s",
        "wall_time_s",
        "bytes_sent",
        "bytes_received",
    )
    shown = _client_keys(rows)
    writer.writerow(
        ["variant", "runs", "completed", "target_accuracy", "reached_target"]
        + [f"{s}_{part}" for s in stats for part in ("mean", "std")]
        + ["errors"]
        + [f"{k}_{part}" for k in shown for part in ("mean", "std")]
    )
    for row in rows:
        values: list[object] = [
            row.label,
            row.runs,
            row.completed,
            "" if target is None else target,
            row.reached,
        ]
        for name in stats:
            stat: Stat | None = getattr(row, name)
            values += ["", ""] if stat is None else [stat.mean, stat.std]
        own: list[object] = []
        for key in shown:
            client = row.clients.get(key)
            own += ["", ""] if client is None else [client.mean, client.std]
        writer.writerow([*values, "; ".join(row.errors), *own])
    return stream.getvalue()


def load_run(
    path: Path, label: str | None = None, seed: int | None = None, error: str | None = None
) -> RunResult:
    """A run folder as a result; label and seed default to its scenario's name and seed.

    ``metrics.jsonl``'s complete rows: a last row cut short (a killed run) is left out and
    noted.  A file that cannot be read raises ScenarioError naming it.
    """
    scenario = _read(path / SCENARIO_FILE, tomllib.loads)
    metrics = path / METRICS_FILE
    rows, note = _read(metrics, lambda text: metrics_rows.complete(text.encode(), str(metrics)), ([], None))
    summary = _read(path / SUMMARY_FILE, json.loads)
    try:
        if error is None and summary.get("status") != "completed":
            error = summary.get("error") or "did not finish (no summary.json)"
        records = tuple(to_records(rows))
        label = label if label is not None else str(scenario.get("name", path.name))
        seed = seed if seed is not None else int(scenario.get("seed", 0))
        wall_time_s = summary.get("wall_time_s")
    except (TypeError, ValueError, AttributeError) as problem:
        raise ScenarioError(str(path), f"not a fedsim run folder ({problem})") from None
    evaluated = per_client.read(path)
    clients = tuple(evaluated[-1][1]) if evaluated else ()
    return RunResult(label, seed, records, wall_time_s, error, note, clients)


def _read(path: Path, parse: Callable[[str], Any], missing: Any = None) -> Any:
    """``parse`` of the file's text; ``missing`` (default: an empty table) if there is no file."""
    if not path.is_file():
        return {} if missing is None else missing
    try:
        return parse(path.read_text(encoding="utf-8"))
    except metrics_rows.RowError as problem:  # it names the file and the line
        raise ScenarioError("", str(problem)) from None
    except (OSError, UnicodeDecodeError, ValueError) as problem:  # TOML and JSON errors are ValueErrors
        reason = problem.strerror if isinstance(problem, OSError) else str(problem)
        raise ScenarioError(str(path), f"unreadable ({reason})") from None


def _show(stat: Stat | None, digits: int = 4) -> str:
    return "-" if stat is None else stat.show(digits)


def _megabytes(stat: Stat | None) -> str:
    return "-" if stat is None else f"{stat.mean / 1e6:.1f}"
