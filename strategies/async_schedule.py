"""Who trains when, in asynchronous FL: the whole run's events on the virtual clock, from the seed.

A task's length does not depend on what the client computes (its steps, its bytes and its device
do: strategies/clock.py), so the schedule is a pure function of the scenario: the events are
ordered by virtual time alone, never by which Ray actor answers first, and a resumed run replays
it to where it stopped.  The rules (FedBuff, Nguyen et al. 2022, Algorithm 1; FedAsync, Xie et
al. 2019, with its concurrency):

- at time 0, and whenever a slot frees, the server starts clients until ``concurrency`` train at
  once: each drawn from ``(seed, "sample", "async", task number)`` among the clients online and
  idle, and sent the current model version;
- a task arrives at ``start + duration(partition)``; arrivals are taken in time order (ties: the
  earlier task); every ``buffer_size``-th arrival makes a new model version from the buffered
  updates, and the clients started at that moment get the new version;
- when no idle client is online, the server waits for the next to come online.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from fedsim.scenario.seeding import generator
from strategies.devices import Devices


@dataclass(frozen=True)
class Task:
    number: int  # 1, 2, ... in start order: the client's training stream, as a round number is
    partition: int
    version: int  # the model version it trains from (0: the initial model)
    start_s: float
    arrival_s: float


@dataclass(frozen=True)
class Step:
    """One new model version: the updates it applies, and the tasks started since the last one."""

    version: int  # 1, 2, ...
    time_s: float  # the arrival that filled the buffer
    applied: tuple[Task, ...]  # in arrival order
    started: tuple[Task, ...]  # every one trains from version - 1


class NobodyOnline(RuntimeError):
    """No client will ever be online and idle: the run cannot go on."""


def schedule(
    devices: Devices,
    duration: Callable[[int], float],
    seed: int,
    buffer_size: int,
    concurrency: int,
) -> Iterator[Step]:
    """Every step of an asynchronous run, in order (an endless generator: take what you need)."""
    busy = np.zeros(len(devices.compute), dtype=bool)
    flight: list[tuple[float, int, Task]] = []  # (arrival, number, task): a heap
    clock, version, number = 0.0, 0, 0
    started: list[Task] = []
    buffer: list[Task] = []

    def fill(t: float) -> None:
        nonlocal number
        while len(flight) < concurrency:
            idle = np.flatnonzero(devices.online(t) & ~busy)
            if not len(idle):
                return
            number += 1
            partition = int(generator(seed, "sample", "async", number).choice(idle))
            task = Task(number, partition, version, t, t + duration(partition))
            busy[partition] = True
            heapq.heappush(flight, (task.arrival_s, task.number, task))
            started.append(task)

    fill(clock)
    while True:
        coming = _next_online(devices, busy, clock) if len(flight) < concurrency else np.inf
        if not flight and not np.isfinite(coming):
            raise NobodyOnline("no client is online to train ([devices] availability)")
        if flight and flight[0][0] <= coming:
            clock, _, task = heapq.heappop(flight)
            busy[task.partition] = False
            buffer.append(task)
            if len(buffer) == buffer_size:
                version += 1
                yield Step(version, clock, tuple(buffer), tuple(started))
                buffer, started = [], []
        else:
            clock = coming
        fill(clock)


def _next_online(devices: Devices, busy: np.ndarray, t: float) -> float:
    """When an idle client offline at ``t`` next comes online (inf: none ever)."""
    upcoming = devices.next_online(t)[~busy]
    later = upcoming[upcoming > t]
    return float(later.min()) if len(later) else np.inf
