"""fedsim from 1,000 to 1,000,000 clients, 100 a round (``python -m benchmarks.run --population``).

The targets, each against the 1,000-client run of the same series: the driver's peak RSS
at most 2 GB, seconds per round within 1.2x, start-up within 2x.  Every client holds 60
MNIST samples (``data.samples_per_client``): 1,000 clients split MNIST's 60,000 between
them (disjoint, the same clients as plain IID), the larger populations draw each client's
60 from all of them (with replacement across clients), so every round is the same work at
every population: 100 clients x 6 SGD steps of B = 10 on McMahan's 2NN.

Besides the runs (benchmarks/child.py, one process each), :func:`structures` measures in
this process what the driver and every client actor build per population: the clients'
rows (fedsim/data/client_rows.py), their bytes, and the time to build them and one round's
clients' row ids (copying their samples is the same work at every population).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.report import Result
from benchmarks.workloads import Workload

TOTALS = (1_000, 10_000, 100_000, 1_000_000)
PER_ROUND = 100
SAMPLES_PER_CLIENT = 60  # 60,000 / 1,000: the 1,000-client run splits MNIST exactly
DRIVER_LIMIT_MB = 2048
ROUND_LIMIT = 1.2  # s/round against the 1,000-client run
STARTUP_LIMIT = 2.0  # start-up against the 1,000-client run


@dataclass(frozen=True)
class Structure:
    """What one process builds for a population: the clients' rows, and a round's clients."""

    clients: int
    build_s: float  # loading (cached) MNIST and partitioning it
    rows_bytes: int  # the clients' rows as held (ClientRows.nbytes)
    sizes_bytes: int  # every client's count (ClientRows.sizes()), as the server builds it
    round_s: float  # building one round's 100 clients' row ids (packed: views; drawn: drawn now)


def workloads(quick: bool, rounds: int) -> list[Workload]:
    totals = TOTALS[::3] if quick else TOTALS  # quick: 1,000 and 1,000,000
    return [
        Workload(
            model="2nn",
            num_clients=n,
            per_round=PER_ROUND,
            rounds=rounds,
            samples_per_client=SAMPLES_PER_CLIENT,
        )
        for n in totals
    ]


def ratios(results: list[Result]) -> dict[str, dict[str, float]]:
    """Per run, against the first (the 1,000-client run): driver RSS, s/round, start-up."""
    if not results:
        return {}
    base = results[0]
    return {
        r.workload: {
            "driver_mb": r.driver_mb / base.driver_mb,
            "round_s": r.round_s / base.round_s,
            "to_clients_s": r.to_clients_s / base.to_clients_s,
            "to_first_call_s": r.to_first_call_s / base.to_first_call_s,
            "to_first_round_s": r.to_first_round_s / base.to_first_round_s,
        }
        for r in results
    }


def verdicts(results: list[Result]) -> dict[str, bool]:
    """Each target, met by every run of the series (start-up: to the first client call)."""
    rows = ratios(results).values()
    return {
        "driver <= 2 GB": all(r.driver_mb <= DRIVER_LIMIT_MB for r in results),
        "round within 1.2x": all(r["round_s"] <= ROUND_LIMIT for r in rows),
        "start-up within 2x": all(r["to_first_call_s"] <= STARTUP_LIMIT for r in rows),
    }


def structures(data_dir: str, quick: bool) -> list[Structure]:
    from fedsim.data import find_federated
    from strategies.plan import train_sample

    out = []
    for workload in workloads(quick, rounds=1):
        scenario = workload.scenario()
        started = time.perf_counter()
        data = find_federated(scenario.data, scenario.seed, data_dir or None)[0]
        built = time.perf_counter() - started
        sample = train_sample(scenario, 1, 0, len(data.clients))
        started = time.perf_counter()
        for pid in sample:
            data.clients[pid]
        round_s = time.perf_counter() - started
        sizes = data.clients.sizes().nbytes
        out.append(Structure(len(data.clients), built, data.clients.nbytes, sizes, round_s))
    return out


def series(
    quick: bool, rounds: int, data_dir: str, measure: Callable[[Workload], Result]
) -> tuple[list[Result], list[Structure]]:
    return [measure(w) for w in workloads(quick, rounds)], structures(data_dir, quick)
