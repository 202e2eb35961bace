"""cProfile of fedsim's ClientApp training handler, in one process: ``python -m benchmarks.client_profile``.

The actors' share of a round, without Ray: the same ``clients.app.train`` a Ray actor
runs, called with the message the server sends (global model, resolved scenario,
round number), for the cohort of round 2, after a warm-up client builds the workload.
Prints the functions by cumulative time and the share of the handler's time spent
training (forward, backward, optimizer) versus everything around it.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict

from benchmarks import plain
from benchmarks.workloads import Workload
from clients import app, training
from fedsim import protocol as keys
from fedsim.models.build import build_model


def messages(workload: Workload, data_dir: str, server_round: int) -> list[tuple[Message, Context]]:
    from flwr.supercore.task_identity import TaskIdentity  # stamps messages made outside a run

    for name, value in (("_run_id", 1), ("_node_id", 0), ("_task_id", 1)):
        setattr(TaskIdentity, name, value)
    scenario = workload.scenario()
    model = build_model(scenario.model, (1, 28, 28), 10, scenario.seed)
    config = ConfigRecord(
        {keys.SCENARIO: scenario.to_toml(), keys.DATA_ROOT: data_dir, keys.SERVER_ROUND: server_round}
    )
    content = RecordDict({keys.ARRAYS: ArrayRecord(model.state_dict()), keys.CONFIG: config})
    out = []
    for pid in plain.cohort(scenario, server_round, workload.num_clients):
        node: dict[str, bool | float | int | str] = {
            keys.NODE_PARTITION_ID: pid,
            keys.NODE_NUM_PARTITIONS: workload.num_clients,
        }
        context = Context(1, pid + 1, node, RecordDict(), {})
        out.append((Message(content, dst_node_id=pid + 1, message_type="train"), context))
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.client_profile", description=__doc__)
    p.add_argument("model", choices=("cnn", "2nn"), nargs="?", default="2nn")
    p.add_argument("--data-dir", default=os.environ.get("FEDSIM_DATA_DIR", ""))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    workload = Workload(model=args.model)
    warm, context = messages(workload, args.data_dir, 1)[0]
    app.train(warm, context)  # builds the cached workload, as round 1 does in an actor
    cohort = messages(workload, args.data_dir, 2)
    profile = cProfile.Profile()
    profile.enable()
    for msg, context in cohort:
        app.train(msg, context)
    profile.disable()
    stats = pstats.Stats(profile, stream=sys.stdout)
    total = float(stats.total_tt)  # type: ignore[attr-defined]
    train_s = _cumulative(stats, training.__file__, "train")
    print(
        f"{len(cohort)} clients: {total:.3f} s in all, training.train {train_s:.3f} s "
        f"({100 * train_s / total:.1f}%), around it {total - train_s:.3f} s"
    )
    stats.sort_stats("cumulative").print_stats(25)


def _cumulative(stats: pstats.Stats, filename: str, function: str) -> float:
    for (file, _, name), (_, _, _, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        if name == function and file == filename:
            return float(cumulative)
    return 0.0


if __name__ == "__main__":
    main()
