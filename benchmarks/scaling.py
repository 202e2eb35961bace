"""fedsim's scaling series: total clients at 10 per round, and clients per round at 100 total.

The issue's target is flat round time and memory from 100 to 10,000 clients (each within
1.1x of the 100-client run), and partitioning 10,000 clients in under a second.  MNIST has
60,000 training samples, so more clients means fewer samples each: a round of 10 clients
takes 600 SGD steps at 100 clients, 60 at 1,000 and 10 at 10,000 (``sgd_steps_per_round``);
what is left of the round time at 10,000 is the engine's overhead per round.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.report import Result
from benchmarks.workloads import Workload

TOTALS = (100, 1_000, 10_000)
PER_ROUND = (10, 50, 100)
PARTITION_CLIENTS = 10_000


@dataclass(frozen=True)
class Series:
    results: list[Result]
    partition_s: float  # loading MNIST excluded: the partitioner alone


def workloads(quick: bool) -> list[Workload]:
    totals = TOTALS[:2] if quick else TOTALS
    per_round = PER_ROUND[:2] if quick else PER_ROUND
    rounds = 3 if quick else 5
    by_total = [Workload(model="2nn", num_clients=n, per_round=10, rounds=rounds) for n in totals]
    by_cohort = [Workload(model="2nn", num_clients=100, per_round=k, rounds=rounds) for k in per_round[1:]]
    return by_total + by_cohort


def sgd_steps_per_round(workload: Workload, train_samples: int = 60_000) -> int:
    """SGD steps of one round's cohort on IID MNIST (partition sizes differ by at most one)."""
    per_client = math.ceil(train_samples / workload.num_clients)
    return workload.per_round * workload.local_epochs * math.ceil(per_client / workload.batch_size)


def partition_seconds(data_dir: str) -> float:
    """Best of 3: the time to split MNIST's 60,000 rows over 10,000 IID clients."""
    from fedsim.data.mnist import load_split, locate
    from fedsim.data.partition import partition
    from fedsim.scenario.seeding import generator

    spec = Workload(num_clients=PARTITION_CLIENTS).scenario().data
    root = locate(data_dir or None)
    labels = load_split(root, "train")[1].numpy()
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        partition(labels, None, spec, generator(0, "partition"), PARTITION_CLIENTS)
        best = min(best, time.perf_counter() - started)
    return best


def series(quick: bool, data_dir: str, measure: Callable[[Workload], Result]) -> Series:
    return Series([measure(w) for w in workloads(quick)], partition_seconds(data_dir))
