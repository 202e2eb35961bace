"""Where a run's time goes: ``python -m benchmarks.profile [cnn|2nn] [--rounds N] [--engine E --capture]``.

Runs fedsim (benchmarks/child.py) under py-spy, sampling the driver and every Ray
process (``--subprocesses``), then sorts the samples of each process into categories
by the frames on their stacks.  Needs ``py-spy`` (``pip install py-spy``); its raw
output is kept beside the JSON for a flame graph.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks.workloads import Workload

REPO = Path(__file__).resolve().parents[1]

# The first rule whose text occurs in a stack names its category; order matters.
CATEGORIES = (
    ("compute: backward", ("backward (torch/_tensor.py", "torch/autograd")),
    ("compute: forward", ("torch/nn/modules",)),
    ("compute: optimizer", ("torch/optim",)),
    ("compile: Dynamo and inductor", ("torch/_dynamo", "torch/_inductor")),
    ("client: cohort step", ("clients/cohort", "clients/capture.py")),
    ("client: train loop", ("clients/training.py",)),
    ("client: data", ("fedsim/data", "clients/workload.py:client")),
    # Not "<module>": a Ray worker runs its whole loop inside default_worker.py's.
    ("imports and start-up", ("_find_and_load", "init_ray")),
    ("serialization", ("serde", "ArrayRecord", "to_torch_state_dict", "array_record", "pickle", "numpy")),
    ("server: rounds", ("fedsim/sim/rounds.py", "fedsim/sim/server.py", "strategies/")),
    ("flower: link state", ("linkstate", "vce_api")),
    ("ray: calls and scheduling", ("ray/_private", "ray/actor", "_raylet")),
)


def categorize(stack: str) -> str:
    for name, needles in CATEGORIES:
        if any(n in stack for n in needles):
            return name
    return "other"


def summarize(raw: str) -> dict[str, dict[str, int]]:
    """Samples per process (as py-spy names it) and category."""
    table: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        # py-spy names each process on the way down from the root: the last one is the sampled one.
        process = [frame for frame in stack.split(";") if frame.startswith("process ")][-1]
        table[process][categorize(stack)] += int(count)
    return {p: dict(c.most_common()) for p, c in table.items()}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__)
    p.add_argument("model", choices=("cnn", "2nn"), nargs="?", default="2nn")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--engine", choices=("per_client", "cohort"), default="per_client")
    p.add_argument("--capture", action="store_true", help="the cohort engine's captured step")
    p.add_argument("--data-dir", default=os.environ.get("FEDSIM_DATA_DIR", ""))
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = p.parse_args(argv)
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    workload = Workload(model=args.model, rounds=args.rounds, engine=args.engine, capture=args.capture)
    args.out.mkdir(parents=True, exist_ok=True)
    raw = args.out / f"profile-{args.model}.txt"
    timeline = args.out / f"profile-{args.model}-timeline.json"
    child = [sys.executable, "-m", "benchmarks.child", "fedsim", workload.to_json(), args.data_dir]
    command = [spy, "record", "--subprocesses", "-r", "50", "-f", "raw", "-o", str(raw), "--"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([*command, *child, str(timeline)], cwd=REPO, env=env, check=True)
    summary = summarize(raw.read_text())
    (args.out / f"profile-{args.model}.json").write_text(json.dumps(summary, indent=2))
    for process, counts in summary.items():
        total = sum(counts.values())
        if total < 50:  # a helper process that barely ran
            continue
        shares = ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in counts.items() if v / total >= 0.02)
        print(f"{process[:70]} ({total} samples): {shares}")


if __name__ == "__main__":
    main()
