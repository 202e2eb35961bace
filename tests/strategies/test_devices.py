"""Device profiles drawn from the seed, availability windows, and device traces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedsim.scenario.devices import DevicesConfig, Distribution
from fedsim.scenario.files import parse_scenario
from fedsim.scenario.tables import ScenarioError
from strategies.devices import draw, read_trace
from tests.conftest import REPO

SPREAD = DevicesConfig(
    compute=Distribution("lognormal", median=50.0, sigma=1.0),
    uplink_mbps=Distribution("loguniform", low=0.5, high=20.0),
    availability="daily",
    online_fraction=0.25,
    day_s=100.0,
)


def test_devices_are_a_function_of_the_seed() -> None:
    a, b, other = draw(SPREAD, 3, 1000), draw(SPREAD, 3, 1000), draw(SPREAD, 4, 1000)
    assert np.array_equal(a.compute, b.compute) and np.array_equal(a.uplink_mbps, b.uplink_mbps)
    assert not np.array_equal(a.compute, other.compute)


def test_a_population_drawn_larger_keeps_nothing_in_common_but_its_distribution() -> None:
    devices = draw(SPREAD, 0, 20_000)
    assert np.median(devices.compute) == pytest.approx(50.0, rel=0.05)
    assert devices.uplink_mbps.min() >= 0.5 and devices.uplink_mbps.max() <= 20.0
    assert np.isinf(devices.downlink_mbps).all()  # not given: downloads take no time


def test_daily_availability_keeps_its_share_online_at_any_time() -> None:
    devices = draw(SPREAD, 0, 20_000)
    for t in (0.0, 37.0, 250.0):
        assert devices.online(t).mean() == pytest.approx(0.25, abs=0.02)


def test_next_online_is_now_for_those_online_and_their_window_start_for_the_others() -> None:
    devices = draw(SPREAD, 1, 50)
    now = devices.online(10.0)
    upcoming = devices.next_online(10.0)
    assert (upcoming[now] == 10.0).all()
    assert (upcoming[~now] > 10.0).all() and (upcoming[~now] <= 110.0).all()
    assert devices.online(float(upcoming[~now][0]) + 1e-9)[np.flatnonzero(~now)[0]]


def test_the_shipped_trace_reads_and_maps_clients_to_its_rows() -> None:
    path = REPO / "scenarios" / "devices" / "phones.csv"
    rows = read_trace(path)
    assert len(rows) >= 10
    cfg = DevicesConfig(trace=str(path), availability="trace")
    devices = draw(cfg, 0, 300)
    assert set(devices.compute) <= {r.compute for r in rows}
    assert devices.compute.max() / devices.compute.min() >= 10
    assert devices.uplink_mbps.max() / devices.uplink_mbps.min() >= 10


def test_a_trace_window_puts_its_device_online_only_then(tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    header = "device,compute_steps_per_s,uplink_mbps,downlink_mbps,online\n"
    trace.write_text(header + "a,10,1,2,10-20;50-60\n", encoding="utf-8")
    devices = draw(DevicesConfig(trace=str(trace), availability="trace", day_s=100.0), 0, 2)
    assert [bool(devices.online(t)[0]) for t in (5, 15, 30, 55, 115)] == [False, True, False, True, True]
    assert devices.next_online(25.0)[0] == 50.0 and devices.next_online(65.0)[0] == 110.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("device,speed\nx,1\n", r"t.csv:1: expected the header"),
        (
            "device,compute_steps_per_s,uplink_mbps,downlink_mbps,online\na,fast,1,1,\n",
            r"t.csv:2: compute_steps_per_s: expected a number, got 'fast'",
        ),
        (
            "device,compute_steps_per_s,uplink_mbps,downlink_mbps,online\na,1,1,1,\nb,1,-2,1,\n",
            r"t.csv:3: uplink_mbps: expected a positive",
        ),
        (
            "device,compute_steps_per_s,uplink_mbps,downlink_mbps,online\na,1,1,1,30-10\n",
            r"t.csv:2: online: expected start-end",
        ),
        (
            "device,compute_steps_per_s,uplink_mbps,downlink_mbps,online\na,1,1\n",
            r"t.csv:2: expected 5 columns",
        ),
        ("device,compute_steps_per_s,uplink_mbps,downlink_mbps,online\n", r"the trace has no device rows"),
    ],
)
def test_a_malformed_trace_is_refused_naming_its_file_and_line(
    tmp_path: Path, text: str, message: str
) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text(text, encoding="utf-8")
    with pytest.raises(ScenarioError, match=message):
        read_trace(trace)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('compute = { dist = "lognormal", median = 5.0 }', r"devices.compute.sigma: missing"),
        (
            'compute = { dist = "constant", value = 5.0, low = 1.0 }',
            r"devices.compute.low: only used by dist",
        ),
        ('compute = { dist = "gamma" }', r"devices.compute.dist: expected one of"),
        (
            'uplink_mbps = { dist = "uniform", low = 5.0, high = 1.0 }',
            r"devices.uplink_mbps.low: expected at most",
        ),
        ('availability = "daily"', r"devices.online_fraction: availability 'daily' needs it"),
        ("online_fraction = 0.5", r"devices.online_fraction: only with availability 'daily'"),
        ('availability = "trace"', r"devices.availability: 'trace' takes the windows"),
        (
            'trace = "x.csv"\ncompute = { dist = "constant", value = 3.0 }',
            r"devices.compute: devices.trace gives",
        ),
    ],
)
def test_bad_devices_tables_name_their_key(table: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        parse_scenario(f"[devices]\n{table}\n")


def test_the_old_straggler_speeds_say_what_to_write_instead() -> None:
    with pytest.raises(
        ScenarioError, match=r"stragglers.max_slowdown: moved: write it as \[devices\] compute"
    ):
        parse_scenario("[stragglers]\nmax_slowdown = 4.0\n")
