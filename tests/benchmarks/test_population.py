"""The population series: 1,000 to 1,000,000 clients at equal work per round, and its ratios."""

from __future__ import annotations

import pytest

from benchmarks import population, report, run
from benchmarks.memory import Peaks


def measured(workload: str, round_s: float, first_call: float, driver_mb: float) -> report.Result:
    ends = [100.0 + first_call + 2 + round_s * k for k in range(4)]  # round 1 starts 2 s after the call
    return report.result(
        workload,
        "fedsim",
        100.0,
        100.0 + first_call - 1,
        ends,
        Peaks(driver_mb=driver_mb),
        0,
        100.0 + first_call,
    )


def test_every_population_does_the_same_work_per_round() -> None:
    loads = population.workloads(quick=False, rounds=5)
    assert [w.num_clients for w in loads] == [1_000, 10_000, 100_000, 1_000_000]
    for w in loads:
        scenario = w.scenario()
        assert scenario.train_cohort(w.num_clients) == 100 and scenario.data.samples_per_client == 60
        assert (scenario.client.local_epochs, scenario.client.batch_size, scenario.model.name) == (
            1,
            10,
            "mlp",
        )


def test_ratios_are_against_the_thousand_client_run_and_say_which_target_is_missed() -> None:
    results = [
        measured("1k", round_s=2.0, first_call=6.0, driver_mb=800),
        measured("1M", round_s=2.2, first_call=13.0, driver_mb=900),
    ]
    ratios = population.ratios(results)
    assert ratios["1k"] == pytest.approx({k: 1.0 for k in ratios["1k"]})
    assert ratios["1M"]["round_s"] == pytest.approx(1.1) and ratios["1M"]["driver_mb"] == pytest.approx(1.125)
    assert ratios["1M"]["to_first_call_s"] == pytest.approx(13 / 6)
    assert population.verdicts(results) == {
        "driver <= 2 GB": True,
        "round within 1.2x": True,
        "start-up within 2x": False,
    }


def test_a_population_dry_run_lists_the_series(capsys: pytest.CaptureFixture[str]) -> None:
    run.main(["--dry-run", "--population"])
    printed = capsys.readouterr().out
    assert "2nn 1000x100 n60: fedsim" in printed and "2nn 1000000x100 n60: fedsim" in printed
