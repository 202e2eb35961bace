"""From timelines to results: per-round medians, start-up times, memory, ratios, the table.

Pure arithmetic on what the children recorded, so tests can feed it timings directly.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from rich.table import Table

from benchmarks.memory import Peaks

WARMUP_ROUNDS = 1  # round 1 starts actors, builds workloads and fills caches


@dataclass(frozen=True)
class Result:
    workload: str
    system: str
    round_s: float  # median seconds per round after warm-up
    rounds_s: tuple[float, ...]  # every round, warm-up included
    to_clients_s: float  # launch -> the server sends round 1 (plain loop: data loaded)
    to_first_call_s: float  # launch -> a client began its first message (nan: not measured, plain loop)
    to_first_round_s: float  # launch -> end of round 1
    driver_mb: float
    actor_mb: float  # the largest actor's peak RSS
    actors: int
    total_mb: float  # the whole process tree's peak RSS, summed
    total_pss_mb: float  # the same in PSS: shared pages counted once
    sgd_steps: int = 0


def per_round(ready: float, round_ends: list[float]) -> tuple[float, ...]:
    """Seconds of each round: from the previous round's end (round 1: from ``ready``)."""
    starts = [ready, *round_ends[:-1]]
    return tuple(end - start for start, end in zip(starts, round_ends, strict=True))


def median_after_warmup(rounds: tuple[float, ...]) -> float:
    measured = rounds[WARMUP_ROUNDS:] or rounds
    return statistics.median(measured) if measured else float("nan")


def result(
    workload: str,
    system: str,
    launched: float,
    ready: float,
    round_ends: list[float],
    peaks: Peaks,
    sgd_steps: int = 0,
    first_call: float = 0.0,
) -> Result:
    rounds = per_round(ready, round_ends)
    return Result(
        workload=workload,
        system=system,
        round_s=median_after_warmup(rounds),
        rounds_s=rounds,
        to_clients_s=ready - launched,
        to_first_call_s=(first_call - launched) if first_call else float("nan"),
        to_first_round_s=(round_ends[0] - launched) if round_ends else float("nan"),
        driver_mb=peaks.driver_mb,
        actor_mb=peaks.actor_max_mb,
        actors=len(peaks.actors_mb),
        total_mb=peaks.total_mb,
        total_pss_mb=peaks.total_pss_mb,
        sgd_steps=sgd_steps,
    )


def two_core_limit(results: list[Result], workload: str) -> float | None:
    """The 1-thread plain loop's round time split over 2 cores."""
    for r in results:
        if r.workload == workload and r.system == "plain-1thread":
            return r.round_s / 2
    return None


def ratios(results: list[Result], workload: str) -> dict[str, dict[str, float]]:
    """Per system: round time / 2-core limit, and quickstart round time / its round time."""
    limit = two_core_limit(results, workload)
    quick = next((r.round_s for r in results if r.workload == workload and r.system == "quickstart"), None)
    out: dict[str, dict[str, float]] = {}
    for r in results:
        if r.workload != workload:
            continue
        row: dict[str, float] = {}
        if limit:
            row["vs_2core_limit"] = r.round_s / limit
        if quick:
            row["quickstart_speedup"] = quick / r.round_s
        out[r.system] = row
    return out


def table(results: list[Result], title: str) -> Table:
    t = Table(title=title)
    for name in (
        "workload",
        "system",
        "s/round",
        "x 2-core limit",
        "quickstart / this",
        "to clients s",
        "to 1st call s",
        "to round 1 s",
        "driver MB",
        "actor MB",
        "actors",
        "tree RSS MB",
        "tree PSS MB",
    ):
        t.add_column(name, justify="left" if name in ("workload", "system") else "right")
    for workload in dict.fromkeys(r.workload for r in results):
        limit = two_core_limit(results, workload)
        rows = ratios(results, workload)
        if limit is not None:
            t.add_row(workload, "2-core limit", f"{limit:.3f}", "1.00", *[""] * 9)
        for r in (r for r in results if r.workload == workload):
            ratio = rows.get(r.system, {})
            t.add_row(
                workload,
                r.system,
                f"{r.round_s:.3f}",
                _fmt(ratio.get("vs_2core_limit")),
                _fmt(ratio.get("quickstart_speedup")),
                f"{r.to_clients_s:.1f}",
                _fmt(r.to_first_call_s, 1),
                f"{r.to_first_round_s:.1f}",
                f"{r.driver_mb:.0f}",
                f"{r.actor_mb:.0f}" if r.actors else "-",
                str(r.actors) if r.actors else "-",
                f"{r.total_mb:.0f}",
                f"{r.total_pss_mb:.0f}",
            )
    return t


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"
