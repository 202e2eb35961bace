"""The virtual clock through the real Flower + Ray engine: devices, deadlines, over-selection."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from fedsim.results.run_dir import read_metrics
from tests.conftest import REPO, simulate
from tests.test_reliability import comparable, resume_here, run_killed_after_round_2, same_model

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


ASYNC = (
    "rounds=6",
    "client.local_epochs=1",
    "data.params.devices=20",
    *SPREAD,
    "strategy.name=fedbuff",
    "strategy.params.buffer_size=3",
    "strategy.params.max_concurrency=6",
    # Compressed both ways: each version's downlink from its own stream, topk's residual kept per client.
    "compression.uplink=topk",
    "compression.downlink=int8",
)


def test_an_async_run_repeats_exactly_and_a_killed_one_resumes_as_if_never_stopped(tmp_path: Path) -> None:
    """Two client actors race (2 cores, 1 CPU a client): the rows must not show it; killed after
    its second model version, the run resumes (its clients in flight sent again) to the same end."""
    simulate(QUICKSTART, tmp_path / "one", overrides=ASYNC)
    simulate(QUICKSTART, tmp_path / "two", overrides=ASYNC)
    rows = comparable(tmp_path / "one")
    assert rows == comparable(tmp_path / "two") and same_model(tmp_path / "one", tmp_path / "two")
    assert max(r["staleness_max"] for r in rows) >= 1  # some updates were stale: asynchrony happened
    assert all(r["virtual_time_s"] > 0 for r in rows) and rows[-1]["accuracy"] is not None
    killed = tmp_path / "killed"
    run_killed_after_round_2(killed, [arg for override in ASYNC for arg in ("--set", override)])
    resume_here(killed)
    assert comparable(killed) == rows and same_model(killed, tmp_path / "one")
