"""One measurement in a process of its own: ``python -m benchmarks.child SYSTEM WORKLOAD DATA_DIR OUT``.

Each system runs in a fresh process so that its memory, its threads and its Ray
cluster are its own; the parent (benchmarks/run.py) samples the process tree's memory.
The file ``OUT`` receives wall-clock times (``time.time()``, comparable with the
parent's launch time): when clients first answered, and when each round ended.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchmarks.timeline import first_client_call
from benchmarks.workloads import Workload

SYSTEMS = ("fedsim", "fedsim-cohort", "plain-1thread", "plain-2threads", "quickstart")


@dataclass
class Timeline:
    """What one system reports: wall-clock instants, plus facts about the run."""

    system: str
    ready: float = 0.0  # the server sent round 1 (plain loop: data loaded)
    first_call: float = 0.0  # a client actor began its first message (0: not measured)
    round_ends: list[float] = field(default_factory=list)
    round_starts: list[float] = field(default_factory=list)
    sgd_steps: int = 0
    notes: dict[str, float | str] = field(default_factory=dict)


class _Reporter:
    """fedsim's Reporter protocol, noting times instead of drawing."""

    def __init__(self, timeline: Timeline, rounds: int) -> None:
        self.timeline = timeline
        self.rounds = rounds

    def started(self, scenario: object, population: int, notes: object = ()) -> None:
        self.timeline.ready = time.time()

    def round_done(self, record: object) -> None:
        self.timeline.round_ends.append(time.time())
        if len(self.timeline.round_ends) == self.rounds:  # Ray is still up: Flower stops it after the run
            self.timeline.first_call = first_client_call()

    def warn(self, text: str) -> None:
        print(f"warning: {text}", file=sys.stderr)


def run_fedsim(workload: Workload, data_dir: str, timeline: Timeline) -> None:
    from fedsim.sim import cluster

    scenario = workload.scenario()
    cluster.start_early(cluster.early(scenario.resources.uses_gpu, verbose=False))  # as `fedsim run` does
    from fedsim.sim import engine

    with tempfile.TemporaryDirectory(prefix="fedsim-bench-") as out:
        job = engine.prepare(scenario, Path(out) / "run", data_dir)
        timeline.notes["prepare_s"] = time.perf_counter() - job.started_at
        timeline.notes["engine"] = engine.actor_plan(job.scenario.resources).describe()
        engine.run(job, _Reporter(timeline, workload.rounds))


def run_plain(workload: Workload, data_dir: str, timeline: Timeline, threads: int) -> None:
    from benchmarks import plain

    data = plain.load(workload, data_dir)
    timeline.ready = time.time()
    seconds, timeline.sgd_steps = plain.run_rounds(workload, data, threads)
    timeline.round_ends = [timeline.ready + s for s in itertools.accumulate(seconds)]


def run_quickstart(workload: Workload, data_dir: str, timeline: Timeline) -> None:
    from flwr.simulation import run_simulation

    from benchmarks import quickstart

    strategy = quickstart.TimedFedAvg(workload)
    backend = {
        "client_resources": {"num_cpus": workload.client_cpus, "num_gpus": workload.client_gpus},
        "init_args": {"logging_level": logging.ERROR, "log_to_driver": False, "address": "local"},
    }
    app = quickstart.server_app(workload, data_dir, strategy)
    logging.getLogger("flwr").setLevel(logging.ERROR)  # Flower logs every round at length
    run_simulation(app, quickstart.client_app, workload.num_clients, "ray", backend)  # type: ignore[arg-type]
    timeline.round_starts, timeline.round_ends = strategy.starts, strategy.ends
    timeline.ready = strategy.starts[0] if strategy.starts else 0.0
    timeline.first_call = strategy.first_call


def main(argv: list[str]) -> None:
    system, workload_json, data_dir, out = argv
    workload = Workload.from_json(workload_json)
    os.environ.pop("RAY_ADDRESS", None)  # every system starts its own private cluster
    timeline = Timeline(system)
    if system.startswith("fedsim"):  # fedsim-cohort: the workload says engine = "cohort" (run.plan)
        run_fedsim(workload, data_dir, timeline)
    elif system.startswith("plain"):
        run_plain(workload, data_dir, timeline, 1 if system == "plain-1thread" else 2)
    elif system == "quickstart":
        run_quickstart(workload, data_dir, timeline)
    else:
        raise SystemExit(f"unknown system {system!r}; expected one of {SYSTEMS}")
    Path(out).write_text(json.dumps(asdict(timeline)))


if __name__ == "__main__":
    main(sys.argv[1:])
