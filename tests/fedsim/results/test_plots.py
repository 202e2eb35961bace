"""Figures: one labelled line per variant, a band over seeds, titled axes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from fedsim.results.comparison import RunResult
from fedsim.results.per_client import ClientOutcome
from fedsim.results.plots import band, bands, curve, figure, points, write_figures
from fedsim.results.records import RoundRecord


def record(n: int, accuracy: float | None, fed: float | None = None) -> RoundRecord:
    loss = None if accuracy is None else 1 - accuracy
    return RoundRecord(n, accuracy, loss, 0.5, fed, None if fed is None else 1 - fed, 2, 0, 1.0, 0.1)


def run(label: str, seed: int, accuracies: list[float | None]) -> RunResult:
    return RunResult(label, seed, tuple(record(i + 1, a) for i, a in enumerate(accuracies)), 1.0)


RESULTS = [run("fedavg", 0, [0.2, 0.5]), run("fedavg", 1, [0.4, 0.7]), run("krum", 0, [0.1, None, 0.3])]


def test_band_is_mean_min_and_max_per_round() -> None:
    b = band([{1: 0.2, 2: 0.5}, {1: 0.4, 2: 0.7, 3: 0.9}])
    assert b.rounds == (1, 2, 3) and b.seeds == 2
    assert b.mean == pytest.approx((0.3, 0.6, 0.9))
    assert (b.low, b.high) == ((0.2, 0.5, 0.9), (0.4, 0.7, 0.9))


def test_points_skip_rounds_not_evaluated_and_fall_back_to_federated() -> None:
    assert points([record(1, 0.5), record(2, None), record(3, 0.75)], "accuracy") == {1: 0.5, 3: 0.75}
    assert points([record(1, None, fed=0.6)], "loss") == {1: pytest.approx(0.4)}


def test_bands_group_runs_by_variant_in_order() -> None:
    grouped = bands(RESULTS, "accuracy")
    assert list(grouped) == ["fedavg", "krum"]
    assert grouped["fedavg"].seeds == 2 and grouped["krum"].rounds == (1, 3)


def test_figure_has_one_labelled_line_per_variant_and_titled_axes() -> None:
    fig = figure(RESULTS, "accuracy", "robust")
    (ax,) = fig.axes
    assert [line.get_label() for line in ax.get_lines()] == ["fedavg", "krum (1 of 2 seeds)"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["fedavg", "krum (1 of 2 seeds)"]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("round", "accuracy")
    assert ax.get_title().startswith("robust: accuracy by round (mean of 2 seeds")
    assert len(ax.collections) == 1  # the band of fedavg's two seeds; krum has one
    plt.close(fig)


def test_write_figures_saves_pngs(tmp_path: Path) -> None:
    paths = write_figures(RESULTS, tmp_path, "robust")
    assert [p.name for p in paths] == [
        "accuracy.png",
        "loss.png",
        "accuracy_by_time.png",
        "accuracy_by_bytes.png",
    ]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in paths)


def test_accuracy_against_bytes_counts_both_directions_cumulatively() -> None:
    records = [
        dataclasses.replace(
            record(n, a), bytes_sent=2_000_000, bytes_received=1_000_000, virtual_time_s=5.0 * n
        )
        for n, a in ((1, 0.5), (2, None), (3, 0.75))
    ]
    assert curve(records, "bytes") == ([3.0, 9.0], [0.5, 0.75])  # MB after rounds 1 and 3
    assert curve(records, "virtual_time_s") == ([5.0, 15.0], [0.5, 0.75])


def test_runs_that_evaluated_clients_get_the_client_accuracy_distribution(tmp_path: Path) -> None:
    outcomes = tuple(ClientOutcome(k, k / 10, 1.0, 5, personal_accuracy=1 - k / 20) for k in range(10))
    evaluated = [dataclasses.replace(r, clients=outcomes) for r in RESULTS]
    names = [p.name for p in write_figures(evaluated, tmp_path, "clients")]
    assert names[-1] == "client_accuracy_cdf.png" and (tmp_path / names[-1]).read_bytes()[:4] == b"\x89PNG"
    (tmp_path / "none").mkdir()
    assert "client_accuracy_cdf.png" not in [p.name for p in write_figures(RESULTS, tmp_path / "none", "x")]
