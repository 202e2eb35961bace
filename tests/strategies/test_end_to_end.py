"""Every strategy through the real Flower + Ray engine, and robust rules under attack."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from fedsim.scenario import plugins
from fedsim.scenario.files import parse_table
from fedsim.scenario.sections import VariantConfig
from fedsim.scenario.variants import plan
from fedsim.sim import sweep
from strategies.algorithm import PLAIN, declared
from strategies.registry import asynchronous

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("ray_cluster")]

TINY = """
name = "tiny"
rounds = 2
[data]
dataset = "synthetic"
partition = "natural"
[data.params]
devices = 5
[model]
name = "logreg"
[client]
local_epochs = 1
batch_size = 32
lr = 0.05
[strategy]
fraction_train = 1.0
fraction_evaluate = 0.4
[resources]
client_cpus = 2  # one actor: each run starts one worker process, not two
"""

# Ten clients holding an even share of the synthetic data; the first two are malicious.
UNDER_ATTACK = """
name = "under-attack"
rounds = 3
[data]
dataset = "synthetic"
partition = "iid"
num_clients = 10
[model]
name = "logreg"
[client]
local_epochs = 2
batch_size = 16
lr = 0.05
[strategy]
fraction_train = 1.0
[attack]
fraction = 0.2
kind = "sign_flip"
"""


def compare(text: str, strategies: list[str], out: Path) -> list[sweep.comparison.RunResult]:
    runs = plan(parse_table(text), [(VariantConfig(s), s) for s in strategies], seeds=(0,))
    results = list(sweep.run_all(runs, out, None, Console(quiet=True)))
    sweep.report(results, out, "test", None)
    return results


def test_every_algorithm_runs_two_rounds(tmp_path: Path) -> None:
    """Two rounds: the second starts from each algorithm's aggregate and each client's kept state.
    The algorithms with a client half, and FedAdam for Flower's server-side strategies (each of
    those also runs through the whole server in tests/strategies/test_server_side_strategies.py)."""
    names = [
        n
        for n, path in plugins.REGISTRY["strategy"].items()
        if not path.startswith("strategies.builtin:")
        and not asynchronous(n)  # those: tests/test_time_engine.py
    ]
    names.append("fedadam")
    results = compare(TINY, names, tmp_path)
    assert [r.label for r in results] == names
    for result in results:
        assert result.error is None, f"{result.label}: {result.error}"
        first, second = result.records
        for record in (first, second):
            assert record.clients_sampled == 5 and record.clients_failed == 0
            assert record.accuracy is not None and record.fed_accuracy is not None
            assert record.bytes_sent > 0 and record.bytes_received > 0
        assert second.bytes_sent == first.bytes_sent, result.label  # the model keeps its dtype and size
    fedavg = next(r.records[0] for r in results if r.label == "fedavg")
    evaluation = fedavg.bytes_sent - fedavg.bytes_received  # 2 evaluated clients get x, reply no arrays
    for result in results:  # an algorithm's arrays beside the model (each model-sized here) are traffic...
        algorithm = declared(plugins.resolve(plugins.STRATEGY, result.label)) or PLAIN
        first = result.records[0]
        assert first.bytes_received == (1 + len(algorithm.replies)) * fedavg.bytes_received, result.label
        assert (
            first.bytes_sent == (1 + len(algorithm.sends)) * fedavg.bytes_received + evaluation
        )  # ... state is not
    table = (tmp_path / "comparison.md").read_text()
    assert table.count("| ok |") == len(names)
    assert (tmp_path / "accuracy.png").is_file() and (tmp_path / "fedavg-seed0" / "metrics.jsonl").is_file()


def test_robust_rules_beat_fedavg_under_sign_flipping(tmp_path: Path) -> None:
    results = compare(UNDER_ATTACK, ["fedavg", "fedmedian", "krum"], tmp_path)
    final = {r.label: sweep.comparison.final_accuracy(r.records) for r in results}
    assert all(r.error is None for r in results)
    assert final["fedmedian"] > final["fedavg"] + 0.1  # type: ignore[operator]
    assert final["krum"] > final["fedavg"] + 0.1  # type: ignore[operator]
