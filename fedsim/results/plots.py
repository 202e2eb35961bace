"""Figures of a comparison: accuracy and loss by round, one line per variant, and accuracy
against the virtual clock and against the bytes moved; under per-client evaluation, the
distribution of the clients' accuracies at the last evaluation (``client_accuracy_cdf.png``).

By round, the line is the mean over seeds at each evaluated round; the shaded band spans the
seeds' minimum to maximum (drawn when there are two or more seeds).  Against time or bytes the
seeds' x values differ, so each seed is a line of its own, in its variant's colour.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import matplotlib

matplotlib.use("Agg")  # files only: no display, no GUI toolkit

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from fedsim.results.comparison import RunResult
from fedsim.results.records import RoundRecord
from fedsim.results.statetree import write_atomic

Metric = Literal["accuracy", "loss"]
FIGURES: dict[Metric, str] = {"accuracy": "accuracy.png", "loss": "loss.png"}
Axis = Literal["virtual_time_s", "bytes"]
AGAINST: dict[Axis, tuple[str, str]] = {  # the figure's file, and its x axis's label
    "virtual_time_s": ("accuracy_by_time.png", "virtual time (s)"),
    "bytes": ("accuracy_by_bytes.png", "bytes sent and received (MB)"),
}
# Variants often end level (median and trimmed mean under attack): a line style and a hollow
# marker of their own keep a line visible on top of another.
STYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")


@dataclass(frozen=True)
class Band:
    rounds: tuple[int, ...]
    mean: tuple[float, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    seeds: int


def points(records: Sequence[RoundRecord], metric: Metric) -> dict[int, float]:
    """Round -> value on evaluated rounds: centralized, else federated evaluation."""
    central = {r.round: getattr(r, metric) for r in records if getattr(r, metric) is not None}
    if central:
        return central
    return {r.round: getattr(r, f"fed_{metric}") for r in records if getattr(r, f"fed_{metric}") is not None}


def band(series: Sequence[dict[int, float]]) -> Band:
    """Mean, min and max over the series at every round any of them has."""
    rounds = sorted({n for s in series for n in s})
    values = [[s[n] for s in series if n in s] for n in rounds]
    return Band(
        rounds=tuple(rounds),
        mean=tuple(sum(v) / len(v) for v in values),
        low=tuple(min(v) for v in values),
        high=tuple(max(v) for v in values),
        seeds=len(series),
    )


def bands(results: Sequence[RunResult], metric: Metric) -> dict[str, Band]:
    """One band per variant label, in first-seen order, over the runs with any points."""
    by_label: dict[str, list[dict[int, float]]] = {}
    for result in results:
        if series := points(result.records, metric):
            by_label.setdefault(result.label, []).append(series)
    return {label: band(series) for label, series in by_label.items()}


def figure(results: Sequence[RunResult], metric: Metric, title: str) -> Figure:
    """One labelled line per variant; the caller saves and closes it."""
    lines = bands(results, metric)
    seeds = max((b.seeds for b in lines.values()), default=0)
    fig, ax = plt.subplots(figsize=(7.5, 4.5), layout="constrained")
    for i, (label, b) in enumerate(lines.items()):
        legend = label if b.seeds == seeds else f"{label} ({b.seeds} of {seeds} seeds)"
        marker = MARKERS[i % len(MARKERS)] if len(b.rounds) <= 30 else None
        style = STYLES[i % len(STYLES)]
        (line,) = ax.plot(b.rounds, b.mean, linestyle=style, marker=marker, fillstyle="none", label=legend)
        if b.seeds > 1:
            ax.fill_between(b.rounds, b.low, b.high, color=line.get_color(), alpha=0.2, linewidth=0)
    spread = f"mean of {seeds} seeds, band from min to max" if seeds > 1 else "one seed"
    ax.set_title(f"{title}: {metric} by round ({spread})")
    ax.set_xlabel("round")
    ax.set_ylabel(metric)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    if lines:
        ax.legend()
    return fig


def curve(records: Sequence[RoundRecord], axis: Axis) -> tuple[list[float], list[float]]:
    """(x, accuracy) at evaluated rounds: x the virtual clock, or the megabytes moved so far."""
    xs, ys, moved = [], [], 0
    for r in records:
        moved += r.bytes_sent + r.bytes_received
        a = r.accuracy if r.accuracy is not None else r.fed_accuracy
        if a is not None:
            xs.append(r.virtual_time_s if axis == "virtual_time_s" else moved / 1e6)
            ys.append(a)
    return xs, ys


def figure_against(results: Sequence[RunResult], axis: Axis, title: str) -> Figure:
    """Accuracy against ``axis``, a line per run, one colour and one legend entry per variant."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5), layout="constrained")
    labels = list(dict.fromkeys(r.label for r in results))
    shown: set[str] = set()
    for result in results:
        xs, ys = curve(result.records, axis)
        if not xs:
            continue
        index = labels.index(result.label)
        style, colour = STYLES[index % len(STYLES)], f"C{index % 10}"  # the colour cycle's
        ax.plot(xs, ys, linestyle=style, color=colour, label=None if result.label in shown else result.label)
        shown.add(result.label)
    ax.set_title(f"{title}: accuracy by {AGAINST[axis][1].split(' (')[0]} (a line per seed)")
    ax.set_xlabel(AGAINST[axis][1])
    ax.set_ylabel("accuracy")
    ax.grid(alpha=0.3)
    if shown:
        ax.legend()
    return fig


CDF_FIGURE = "client_accuracy_cdf.png"


def client_cdf(results: Sequence[RunResult], title: str) -> Figure:
    """Per variant (its seeds' clients together), the share of clients at or below each accuracy
    at the last per-client evaluation: the global model's solid, personal models' dashed."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5), layout="constrained")
    labels = list(dict.fromkeys(r.label for r in results))
    for index, label in enumerate(labels):
        outcomes = [o for r in results if r.label == label for o in r.clients]
        colour = f"C{index % 10}"
        for values, style, name in (
            ([o.accuracy for o in outcomes], "-", label),
            (
                [o.personal_accuracy for o in outcomes if o.personal_accuracy is not None],
                "--",
                f"{label} (personal)",
            ),
        ):
            if values:
                xs = sorted(values)
                ax.step(
                    xs,
                    [(i + 1) / len(xs) for i in range(len(xs))],
                    style,
                    color=colour,
                    where="post",
                    label=name,
                )
    ax.set_title(f"{title}: client accuracies at the last per-client evaluation")
    ax.set_xlabel("a client's accuracy on its own test data")
    ax.set_ylabel("share of clients at or below")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def write_figures(results: Sequence[RunResult], out: Path, title: str) -> list[Path]:
    """``accuracy.png``, ``loss.png``, ``accuracy_by_time.png`` and ``accuracy_by_bytes.png`` in ``out``;
    ``client_accuracy_cdf.png`` too where the runs evaluated clients."""
    figures = [(figure(results, m, title), name) for m, name in FIGURES.items()]
    figures += [(figure_against(results, axis, title), name) for axis, (name, _) in AGAINST.items()]
    if any(r.clients for r in results):
        figures.append((client_cdf(results, title), CDF_FIGURE))
    paths = []
    for fig, name in figures:
        image = io.BytesIO()
        fig.savefig(image, format="png", dpi=120)
        plt.close(fig)
        write_atomic(out / name, image.getvalue())  # a full disk: the old figure, and the path named
        paths.append(out / name)
    return paths
