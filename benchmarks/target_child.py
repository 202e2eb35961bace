"""One system trained to a target accuracy in a process of its own (benchmarks/to_target.py).

``python -m benchmarks.target_child SYSTEM WORKLOAD TARGET DATA_DIR OUT``: after every round
the global model is evaluated on MNIST's test set, as fedsim's centralized evaluation does;
at the first round reaching TARGET the wall-clock (``time.time()``) and the round are written
to OUT and the process ends there (a Flower anchor: at once, Ray and all, which the parent
then reaps: its time to the target is a lower bound of its whole command).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

import torch

from benchmarks import plain
from benchmarks.workloads import Workload
from clients import training
from fedsim.models.build import build_model


def reached(out: str, server_round: int) -> None:
    Path(out).write_text(json.dumps({"at": time.time(), "round": server_round}))


def run_plain(workload: Workload, target: float, data_dir: str, out: str) -> None:
    torch.set_num_threads(1)
    data = plain.load(workload, data_dir)
    scenario, device = workload.scenario(), workload.device
    model = build_model(scenario.model, data.input_shape, data.num_classes, scenario.seed)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for server_round in range(1, workload.rounds + 1):
        state, _ = plain.one_round(scenario, model, state, data, server_round, device)
        model.load_state_dict(state)
        if training.evaluate(model, data.test)[1] >= target:
            reached(out, server_round)
            return


def run_flower(workload: Workload, target: float, data_dir: str, out: str, cached: bool) -> None:
    from flwr.app import ArrayRecord, MetricRecord
    from flwr.simulation import run_simulation

    from benchmarks import quickstart

    test = plain.load(workload, data_dir).test  # fedsim's normalized test set: the same images
    model = build_model(workload.scenario().model, (1, 28, 28), 10, workload.seed)

    def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        if server_round == 0:  # Flower evaluates the initial model too
            return None
        model.load_state_dict(arrays.to_torch_state_dict())
        accuracy = training.evaluate(model, test)[1]
        if accuracy >= target:
            reached(out, server_round)
            sys.stdout.flush()
            os._exit(0)  # stop here: Flower has no early stop; the parent reaps Ray
        return MetricRecord({"accuracy": accuracy})

    strategy = quickstart.TimedFedAvg(workload)
    backend = {
        "client_resources": {"num_cpus": workload.client_cpus, "num_gpus": workload.client_gpus},
        "init_args": {"logging_level": logging.ERROR, "log_to_driver": False, "address": "local"},
    }
    app = quickstart.server_app(workload, data_dir, strategy, evaluate)
    client = quickstart.cached_client_app if cached else quickstart.client_app
    logging.getLogger("flwr").setLevel(logging.ERROR)
    run_simulation(app, client, workload.num_clients, "ray", backend)  # type: ignore[arg-type]


def main(argv: list[str]) -> None:
    system, workload_json, target, data_dir, out = argv
    workload = Workload.from_json(workload_json)
    if system == "plain":
        run_plain(workload, float(target), data_dir, out)
    elif system in ("quickstart", "cached"):
        run_flower(workload, float(target), data_dir, out, cached=system == "cached")
    else:
        raise SystemExit(f"unknown system {system!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
