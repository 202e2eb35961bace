"""Flower's server-side strategies through fedsim's whole server (fedsim/sim/server.py: sampling,
rounds, evaluation, checkpoints, results) with the real ClientApp answering in this process.

They differ from FedAvg only in how the server aggregates, so Ray adds nothing to what is tested
here; the algorithms with a client half, and one of these, run on the Ray engine in
tests/strategies/test_end_to_end.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fedsim.results.run_dir import read_metrics
from fedsim.scenario import plugins
from fedsim.scenario.files import parse_scenario
from fedsim.sim import engine
from fedsim.sim.exchange import Abort
from fedsim.sim.server import Pool, serve
from strategies.algorithm import declared
from tests.conftest import RecordingReporter
from tests.fedsim.sim.test_rounds import InProcessGrid
from tests.strategies.test_end_to_end import TINY

pytestmark = pytest.mark.usefixtures("task_identity")

# Flower's strategies, wrapped in strategies/builtin.py; the algorithms have a file each.
SERVER_SIDE = [
    n for n, path in plugins.REGISTRY["strategy"].items() if path.startswith("strategies.builtin:")
]


def test_flowers_strategies_have_a_plain_client_half() -> None:
    assert {"fedadam", "fedavgm", "krum", "bulyan", "qfedavg"} <= set(SERVER_SIDE)
    for name in SERVER_SIDE:
        algorithm = declared(plugins.resolve(plugins.STRATEGY, name))
        assert algorithm is not None and not algorithm.state and not algorithm.replies and not algorithm.sends


@pytest.mark.parametrize("name", SERVER_SIDE)
def test_each_runs_two_rounds_from_its_own_aggregate(tmp_path: Path, name: str) -> None:
    scenario = parse_scenario(TINY, (f"strategy.name={name}",))
    job = engine.prepare(scenario, tmp_path / "run", None)
    summary = serve(InProcessGrid(range(1, 6)), job, RecordingReporter(), Abort(), Pool(5, None))
    assert summary.status == "completed", summary.error
    first, second = read_metrics(tmp_path / "run")
    for row in (first, second):
        assert row["clients_sampled"] == 5 and row["clients_failed"] == 0
        assert row["accuracy"] is not None and row["fed_accuracy"] is not None
        assert row["bytes_sent"] > 0 and row["bytes_received"] > 0
    assert second["bytes_sent"] == first["bytes_sent"]  # the model keeps its dtype and size
    assert (tmp_path / "run" / "model.pt").is_file()
