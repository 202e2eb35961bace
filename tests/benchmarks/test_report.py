"""The benchmark's arithmetic: round times, medians after warm-up, ratios, the table."""

from __future__ import annotations

import pytest
from rich.console import Console

from benchmarks import report
from benchmarks.memory import Peaks


def timed(system: str, ready: float, ends: list[float], workload: str = "cnn 100x10") -> report.Result:
    peaks = Peaks(driver_mb=500, actors_mb={11: 900, 12: 950}, total_mb=3000, total_pss_mb=2000)
    return report.result(workload, system, 100.0, ready, ends, peaks)


def test_rounds_are_timed_from_readiness_then_from_the_previous_round() -> None:
    r = timed("fedsim", 108.0, [113.0, 117.0, 120.0, 125.0])
    assert r.rounds_s == pytest.approx((5.0, 4.0, 3.0, 5.0))
    assert r.round_s == pytest.approx(4.0)  # median of rounds 2-4; round 1 is warm-up
    assert r.to_clients_s == pytest.approx(8.0) and r.to_first_round_s == pytest.approx(13.0)
    assert (r.actor_mb, r.actors, r.driver_mb) == (950, 2, 500)


def test_the_first_client_call_is_timed_from_launch_where_it_was_measured() -> None:
    peaks = Peaks(driver_mb=500)
    called = report.result("cnn 100x10", "fedsim", 100.0, 104.0, [110.0], peaks, first_call=106.5)
    assert called.to_first_call_s == pytest.approx(6.5)
    plain = report.result("cnn 100x10", "plain-1thread", 100.0, 101.0, [110.0], peaks)
    assert plain.to_first_call_s != plain.to_first_call_s  # NaN: no client call to time


def test_ratios_against_the_2_core_limit_and_the_quickstart_client() -> None:
    results = [
        timed("plain-1thread", 0.0, [8.0, 16.0, 24.0]),  # 8 s/round: the limit is 4 s
        timed("fedsim", 0.0, [5.0, 9.4, 13.8]),  # 4.4 s/round
        timed("quickstart", 0.0, [6.0, 11.5, 17.0]),  # 5.5 s/round
        timed("fedsim", 0.0, [1.0, 2.0, 3.0], workload="2nn 100x10"),
    ]
    assert report.two_core_limit(results, "cnn 100x10") == pytest.approx(4.0)
    ratios = report.ratios(results, "cnn 100x10")
    assert ratios["fedsim"]["vs_2core_limit"] == pytest.approx(1.1)
    assert ratios["fedsim"]["quickstart_speedup"] == pytest.approx(1.25)
    assert ratios["plain-1thread"]["vs_2core_limit"] == pytest.approx(2.0)
    assert report.ratios(results, "2nn 100x10") == {"fedsim": {}}  # no reference measured for it


def test_table_shows_the_limit_row_and_every_system() -> None:
    results = [timed("plain-1thread", 0.0, [8.0, 16.0]), timed("fedsim", 0.0, [5.0, 9.4])]
    console = Console(width=200, record=True)
    console.print(report.table(results, "t"))
    text = console.export_text()
    assert "2-core limit" in text and "4.000" in text and "4.400" in text and "1.10" in text
