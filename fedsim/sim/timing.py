"""A synchronous round on the virtual clock: who is online to be sampled, and which replies
arrive in time.

The clock starts at 0 and advances by every attempt's duration (strategies/clock.py: select);
each reply's arrival is its client's task time, from its device (strategies/devices.py) and the
bytes its message and its reply carried.  A row of metrics.jsonl records the clock as its round
ended (``virtual_time_s``), and a resumed run reads it back from the last row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from flwr.app import Message

from fedsim import protocol as keys
from fedsim.scenario.sections import Scenario
from fedsim.sim.exchange import RunError, array_bytes
from strategies.clock import select, task_s
from strategies.devices import Devices
from strategies.plan import RoundPlan

# How far ahead the clock may look for enough clients online before the run gives up: a
# scenario whose clients are never online together would otherwise wait forever.
MAX_WAIT_PERIODS = 2


def start_when_online(devices: Devices, clock: float, minimum: int) -> float:
    """The first time from ``clock`` on when at least ``minimum`` clients are online."""
    t = clock
    limit = clock + MAX_WAIT_PERIODS * devices.period_s
    while devices.online(t).sum() < minimum:
        upcoming = devices.next_online(t)
        later = upcoming[upcoming > t]
        if not len(later) or t > limit:
            raise RunError(
                f"fewer than strategy.min_train_clients = {minimum} clients are ever online together "
                "([devices] availability)"
            )
        t = float(later.min())
    return t


@dataclass(frozen=True)
class Timed:
    """An attempt's replies on the clock: those it aggregates, and how long it lasted."""

    kept: list[Message]  # the good replies that arrived in time, in arrival order
    late: int  # good replies that came after the round ended
    duration_s: float


def time_replies(
    scenario: Scenario,
    devices: Devices,
    plan: RoundPlan,
    good: Sequence[Message],
    sent: Mapping[int, Message],
    travelled: Mapping[int, Message],
    partition_of: Mapping[int, int],
    missing: bool,
) -> Timed:
    """Each good reply's arrival from its client's task (``sent``: the train message by node,
    ``travelled``: its reply as it came, encoded, where ``good`` holds it decoded);
    ``missing``: some client never answered, so the server waited until the deadline, or the
    whole ``round_timeout_s`` without one."""
    arrivals = []
    for reply in good:
        node = reply.metadata.src_node_id
        partition = partition_of[node]
        examples = keys.number(reply.content.metric_records[keys.METRICS], keys.NUM_EXAMPLES)
        steps = scenario.client.local_steps(examples, plan.of(partition).epochs)
        down, up = array_bytes([sent[node]]), array_bytes([travelled[node]])
        arrivals.append(
            task_s(
                down,
                steps,
                up,
                float(devices.compute[partition]),
                float(devices.downlink_mbps[partition]),
                float(devices.uplink_mbps[partition]),
            )
        )
    cfg = scenario.strategy
    wanted = scenario.train_cohort(len(devices.compute)) if cfg.over_selection > 0 else None
    chosen = select(arrivals, cfg.round_deadline_s, wanted)
    duration = chosen.duration_s
    reached = wanted is not None and len(chosen.kept) >= wanted  # over-selection had its replies
    if missing and not reached:  # the server cannot tell a lost client from a slow one
        deadline = cfg.round_deadline_s
        duration = deadline if deadline is not None else max(duration, scenario.resources.round_timeout_s)
    return Timed([good[i] for i in chosen.kept], len(chosen.late), duration)
