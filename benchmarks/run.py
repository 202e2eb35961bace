"""``python -m benchmarks.run``: fedsim, the plain loop and a quickstart-style Flower client, side by side.

Each (workload, system) runs in a child process (benchmarks/child.py) while this
process samples the memory of the child's process tree.  Prints a table and writes
JSON (``--out``).  ``--quick`` shortens everything to a smoke run; ``--scaling`` adds
fedsim's series over total clients and clients per round, and partitioning time;
``--population`` the series 1,000 to 1,000,000 clients at 100 a round (benchmarks/population.py).
``--client-gpus 1,0.25,0.1`` trains on the GPU: fedsim at each share (1, 4, 10 clients per
GPU), the other systems at the last one (benchmarks/device.sh).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from rich.console import Console

from benchmarks import population, report, scaling
from benchmarks.child import SYSTEMS
from benchmarks.memory import TreeSampler
from benchmarks.workloads import QUICKSTART_MODELS, Workload

REPO = Path(__file__).resolve().parents[1]


def measure(workload: Workload, system: str, data_dir: str, timeout_s: float | None = None) -> report.Result:
    """Run one system on one workload in a fresh process; raise if it fails or outlasts ``timeout_s``."""
    with tempfile.TemporaryDirectory(prefix="fedsim-bench-") as tmp:
        out = Path(tmp) / "timeline.json"
        # Keep the caller's path too: on the GPU machine Flower and Ray come from a --target folder.
        path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
        env = {**os.environ, "PYTHONPATH": path}
        env.pop("RAY_ADDRESS", None)
        command = [sys.executable, "-m", "benchmarks.child", system, workload.to_json(), data_dir, str(out)]
        launched = time.time()
        # A session of its own, so that a child past its time goes with its private Ray cluster.
        child = subprocess.Popen(command, cwd=REPO, env=env, start_new_session=True)
        with TreeSampler(child.pid) as sampler:
            try:
                code = child.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
                raise RuntimeError(f"{system} on {workload.label} ran past {timeout_s:g} s") from None
        if code != 0:
            raise RuntimeError(f"{system} on {workload.label} exited with {code}")
        timeline = json.loads(out.read_text())
    return report.result(
        workload.label,
        system,
        launched,
        timeline["ready"],
        timeline["round_ends"],
        sampler.peaks,
        timeline["sgd_steps"],
        timeline["first_call"],
    )


def machine() -> dict[str, object]:
    """Where and under what load the numbers were taken."""
    return {
        "cpus": len(os.sched_getaffinity(0)),
        "cpu": platform.processor() or platform.machine(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_before": os.getloadavg(),
        "python": platform.python_version(),
    }


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    p.add_argument("--models", default="cnn,2nn", help="comma-separated: cnn, 2nn, lstm (Shakespeare)")
    p.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated of {', '.join(SYSTEMS)}")
    p.add_argument("--rounds", type=int, default=5, help="rounds per run; the first is warm-up")
    p.add_argument("--quick", action="store_true", help="2NN only, 3 rounds, no 2-thread loop")
    p.add_argument("--scaling", action="store_true", help="also fedsim's scaling series (2NN)")
    p.add_argument("--scaling-only", action="store_true", help="only the scaling series")
    p.add_argument(
        "--population", action="store_true", help="only the series 1k, 10k, 100k, 1M clients at 100 a round"
    )
    p.add_argument("--epochs", type=int, default=1, help="local epochs E")
    p.add_argument("--client-gpus", default="", help="comma-separated GPU shares, e.g. 1,0.25,0.1")
    p.add_argument("--child-timeout", type=float, default=None, help="seconds one system may run")
    p.add_argument("--dry-run", action="store_true", help="print what would run, run nothing")
    p.add_argument("--data-dir", default=os.environ.get("FEDSIM_DATA_DIR", ""))
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "latest.json")
    return p.parse_args(argv)


def plan(
    models: list[str], systems: list[str], rounds: int, epochs: int, shares: list[float]
) -> list[tuple[Workload, str]]:
    """Each (workload, system) to run: on the CPU every system once per model; on the GPU
    fedsim at every share (clients per GPU: 1 / share), the other systems at the last one.
    The quickstart client only where it exists (MNIST; see ``skipped``)."""
    runs = []
    for model in models:
        base = Workload.of(model, rounds=rounds, local_epochs=epochs)
        for system in systems:
            if system == "quickstart" and model not in QUICKSTART_MODELS:
                continue
            at = shares if system == "fedsim" else shares[-1:]
            cohort = system == "fedsim-cohort"  # with graph capture: its fastest on a CPU too
            on = dataclasses.replace(base, engine="cohort" if cohort else "per_client", capture=cohort)
            runs += [(dataclasses.replace(on, client_gpus=s), system) for s in at] or [(on, system)]
    return runs


def skipped(models: list[str], systems: list[str]) -> list[str]:
    """What ``plan`` leaves out, and why: a line each."""
    if "quickstart" not in systems:
        return []
    return [
        f"{model}: quickstart skipped (Flower's PyTorch quickstart is an image client; it has no text form)"
        for model in models
        if model not in QUICKSTART_MODELS
    ]


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    console = Console(width=max(Console().width, 150))
    models = ["2nn"] if args.quick else args.models.split(",")
    systems = args.systems.split(",")
    if args.quick:
        systems = [s for s in systems if s != "plain-2threads"]
    rounds = 3 if args.quick else args.rounds
    output: dict[str, object] = {"machine": machine(), "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    results: list[report.Result] = []
    failed: list[str] = []
    runs = plan(models, systems, rounds, args.epochs, [float(s) for s in args.client_gpus.split(",") if s])
    for line in skipped(models, systems):
        console.print(f"[yellow]{line}[/]", highlight=False)
    if args.population:
        runs = [(w, "fedsim") for w in population.workloads(args.quick, 3 if args.quick else args.rounds)]
    if args.dry_run:
        for workload, system in runs:
            console.print(f"{workload.label}: {system}  {workload.to_json()}", highlight=False)
        return
    if args.population:
        output["population"] = run_population(args, console)
    elif not args.scaling_only:
        for workload, system in runs:
            console.print(f"[dim]{workload.label}: {system}...[/]")
            try:
                results.append(measure(workload, system, args.data_dir, args.child_timeout))
            except RuntimeError as error:  # one system failing leaves the others' numbers
                console.print(f"[red]{error}[/]")
                failed.append(str(error))
        console.print(report.table(results, "seconds per round after warm-up (median), memory peaks"))
        output["results"] = [dataclasses.asdict(r) for r in results]
        output["ratios"] = {w: report.ratios(results, w) for w in dict.fromkeys(r.workload for r in results)}
    if args.scaling or args.scaling_only:
        series = scaling.series(args.quick, args.data_dir, lambda w: measure(w, "fedsim", args.data_dir))
        console.print(report.table(series.results, "fedsim scaling (2NN, E=1, B=10)"))
        console.print(f"partitioning {scaling.PARTITION_CLIENTS} IID clients: {series.partition_s:.3f} s")
        steps = [scaling.sgd_steps_per_round(w) for w in scaling.workloads(args.quick)]
        console.print(
            "SGD steps per round: "
            + ", ".join(f"{r.workload} {s}" for r, s in zip(series.results, steps, strict=True))
        )
        output["scaling"] = {
            "results": [
                {**dataclasses.asdict(r), "sgd_steps_per_round": s}
                for r, s in zip(series.results, steps, strict=True)
            ],
            "partition_s": series.partition_s,
        }
    output["failed"] = failed
    output["load_average_after"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(output, indent=2))
    console.print(f"written: {args.out}")


def run_population(args: argparse.Namespace, console: Console) -> dict[str, object]:
    results, structures = population.series(
        args.quick,
        3 if args.quick else args.rounds,
        args.data_dir,
        lambda w: measure(w, "fedsim", args.data_dir, args.child_timeout),
    )
    console.print(
        report.table(results, "fedsim by population (2NN, 100 a round, 60 samples each, E=1, B=10)")
    )
    ratios = population.ratios(results)
    for label, row in ratios.items():
        console.print(f"{label}: " + ", ".join(f"{k} {v:.2f}x" for k, v in row.items()), highlight=False)
    for s in structures:
        console.print(
            f"{s.clients} clients: partition built in {s.build_s:.3f} s, rows {s.rows_bytes / 2**20:.2f} MB, "
            f"sizes {s.sizes_bytes / 2**20:.2f} MB, a round's rows {s.round_s * 1e3:.2f} ms",
            highlight=False,
        )
    verdicts = population.verdicts(results)
    console.print("targets: " + ", ".join(f"{k}: {'met' if v else 'MISSED'}" for k, v in verdicts.items()))
    return {
        "results": [dataclasses.asdict(r) for r in results],
        "ratios": ratios,
        "structures": [dataclasses.asdict(s) for s in structures],
        "targets": verdicts,
    }


if __name__ == "__main__":
    main()
