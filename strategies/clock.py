"""The virtual clock's arithmetic: a client's task in seconds, and a synchronous round's end.

A task is the model's download, the local steps and the update's upload, one after another::

    time = bytes_down * 8 / downlink + steps / compute + bytes_up * 8 / uplink

with bandwidths in megabits per second (10**6 bits) and compute in local steps per second, from
the client's device (strategies/devices.py) and the bytes that really travel (after compression).
A synchronous round ends when its last awaited reply arrives; with a deadline (Bonawitz et al.
2019, "Towards Federated Learning at Scale") the server stops waiting at the deadline and what
arrives later is not aggregated; with over-selection it stops at the first ``wanted`` arrivals.
Pure functions: the clock never reads a wall clock, so which Ray actor answers first changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

BITS_PER_MEGABIT = 1e6


def transfer_s(num_bytes: float, mbps: float) -> float:
    """Seconds to move ``num_bytes`` at ``mbps`` megabits per second (``inf`` bandwidth: none)."""
    return num_bytes * 8 / (mbps * BITS_PER_MEGABIT)


def task_s(
    bytes_down: float, steps: float, bytes_up: float, compute: float, downlink_mbps: float, uplink_mbps: float
) -> float:
    """A client's task: download, ``steps`` local steps at ``compute`` steps per second, upload."""
    return transfer_s(bytes_down, downlink_mbps) + steps / compute + transfer_s(bytes_up, uplink_mbps)


@dataclass(frozen=True)
class Selection:
    """Which replies a synchronous round aggregates, and how long the server waited."""

    kept: tuple[int, ...]  # indices into the arrivals, in arrival order
    late: tuple[int, ...]  # arrived after the round ended: their work is not aggregated
    duration_s: float  # from the round's start to its end


def select(arrivals: Sequence[float], deadline_s: float | None, wanted: int | None) -> Selection:
    """A round's replies, arriving ``arrivals`` seconds after it began.

    The server waits for ``wanted`` replies (None: all of them), and no longer than
    ``deadline_s`` (None: no deadline).  It ends at the last reply it takes; at the deadline if
    it was still waiting for some then.  Ties go to the lower index: the order is a function
    of the times alone.
    """
    order = sorted(range(len(arrivals)), key=lambda i: (arrivals[i], i))
    count = len(order) if wanted is None else min(wanted, len(order))
    in_time = [i for i in order if deadline_s is None or arrivals[i] <= deadline_s]
    kept = tuple(in_time[:count])
    late = tuple(i for i in order if i not in set(kept))
    waited_out = len(kept) < count  # the deadline came first
    if waited_out:
        assert deadline_s is not None
        duration = deadline_s
    else:
        duration = max((arrivals[i] for i in kept), default=0.0)
    return Selection(kept, late, duration)
