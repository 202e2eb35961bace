"""The virtual clock through the real Flower + Ray engine: devices, deadlines, over-selection."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from fedsim.results.run_dir import read_metrics
from tests.conftest import REPO, simulate

pytestmark = pytest.mark.engine

QUICKSTART = (REPO / "fedsim" / "quickstart.toml").read_text()
SMALL = ("rounds=3", "client.local_epochs=1", "data.params.devices=20", "strategy.fraction_train=0.5")
SPREAD = (
    "devices.compute={dist='loguniform',low=5.0,high=200.0}",
    "devices.uplink_mbps={dist='loguniform',low=0.1,high=10.0}",
)


def test_a_deadline_with_over_selection_aggregates_the_first_arrivals_on_the_clock(tmp_path: Path) -> None:
    overrides = (*SMALL, *SPREAD, "strategy.over_selection=0.4", "strategy.round_deadline_s=30.0")
    summary, _ = simulate(QUICKSTART, tmp_path, overrides=overrides)
    rows = read_metrics(tmp_path)
    clock = 0.0
    for row in rows:
        assert row["clients_sampled"] == math.ceil(10 * 1.4)  # 10 of 20, and 40 % more
        assert row["clients_late"] >= 4  # at most the first 10 are aggregated
        assert 0 < row["simulated_time_s"] <= 30.0
        clock += row["simulated_time_s"]
        assert row["virtual_time_s"] == pytest.approx(clock, abs=0.01)  # rows keep milliseconds
    assert summary.virtual_time_s == rows[-1]["virtual_time_s"]
