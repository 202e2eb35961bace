"""Differential privacy end to end, through the real Flower simulation engine and Ray."""

from __future__ import annotations

import json
import math
from pathlib import Path

import dp_accounting as dpa
import pytest
from dp_accounting.rdp import RdpAccountant

from fedsim.results.run_dir import read_metrics
from tests.conftest import REPO, simulate

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("ray_cluster")]

QUICKSTART = (REPO / "fedsim" / "quickstart.toml").read_text()  # 30 synthetic clients, q = 0.34


def independent_epsilon(rate: float, noise: float, rounds: int, delta: float) -> float:
    accountant = RdpAccountant()
    accountant.compose(dpa.PoissonSampledDpEvent(rate, dpa.GaussianDpEvent(noise)), rounds)
    return float(accountant.get_epsilon(delta))


def test_client_side_adaptive_clipping_reports_the_epsilon_of_its_mechanism(tmp_path: Path) -> None:
    """Flower's adaptiveclipping_mod on the clients, their norm bit through the reply screening, the
    noise on the server; epsilon per round equals an independent computation of the same mechanism
    (Poisson q = 0.34, effective noise multiplier 0.8 of update and count together)."""
    overrides = (
        "rounds=2",
        'privacy.mode="central"',
        'privacy.clipping="adaptive"',
        'privacy.where="client"',
        "privacy.noise_multiplier=0.8",
        "privacy.clipped_count_stddev=1.0",
        'privacy.sampling="poisson"',
    )
    summary, reporter = simulate(QUICKSTART, tmp_path / "run", overrides=overrides)
    rows = read_metrics(tmp_path / "run")
    delta = 30**-1.1
    assert [r["delta"] for r in rows] == pytest.approx([delta, delta])
    epsilons = [r["epsilon"] for r in rows]
    assert all(math.isfinite(e) for e in epsilons) and 0 < epsilons[0] < epsilons[1]
    for r, eps in enumerate(epsilons, start=1):
        assert eps == pytest.approx(independent_epsilon(0.34, 0.8, r, delta), rel=1e-6)
    assert all(r["clients_failed"] == 0 for r in rows) and not reporter.warnings
    assert summary.epsilon == epsilons[-1] and summary.delta == pytest.approx(delta)
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert saved["epsilon"] == epsilons[-1] and saved["noise_multiplier"] == 0.8


def test_a_run_stops_at_the_last_round_within_target_epsilon(tmp_path: Path) -> None:
    delta = 30**-1.1
    one, two = independent_epsilon(0.34, 1.0, 1, delta), independent_epsilon(0.34, 1.0, 2, delta)
    target = (one + two) / 2
    overrides = (
        "rounds=3",
        'privacy.mode="central"',
        'privacy.sampling="poisson"',
        f"privacy.target_epsilon={target}",
    )
    summary, reporter = simulate(QUICKSTART, tmp_path / "run", overrides=overrides)
    rows = read_metrics(tmp_path / "run")
    assert [r["round"] for r in rows] == [1] and rows[0]["epsilon"] == pytest.approx(one)
    assert summary.status == "completed" and summary.rounds_completed == 1
    assert summary.epsilon is not None and summary.epsilon <= target
    assert summary.privacy_stop is not None and summary.privacy_stop.startswith("stopped before round 2")
    assert reporter.warnings == [summary.privacy_stop]


def test_local_dp_runs_repeat_bitwise_from_the_seed(tmp_path: Path) -> None:
    overrides = (
        "rounds=2",
        'privacy.mode="local"',
        "privacy.noise_multiplier=0.01",
        "privacy.clipping_norm=5.0",
    )
    simulate(QUICKSTART, tmp_path / "a", overrides=overrides)
    simulate(QUICKSTART, tmp_path / "b", overrides=overrides)
    keys = ("accuracy", "loss", "train_loss", "epsilon")
    a, b = read_metrics(tmp_path / "a"), read_metrics(tmp_path / "b")
    assert [[r[k] for k in keys] for r in a] == [[r[k] for k in keys] for r in b]
    assert 0 < a[0]["epsilon"] <= a[1]["epsilon"]


def test_dp_sgd_in_the_clients_learns_and_reports_a_finite_epsilon(tmp_path: Path) -> None:
    """Every client trains every round, so the largest client epsilon grows each round."""
    overrides = (
        "rounds=2",
        "strategy.fraction_train=1.0",
        "client.local_epochs=1",
        'privacy.mode="sample"',
        "privacy.noise_multiplier=1.0",
        "privacy.max_grad_norm=1.0",
    )
    summary, _ = simulate(QUICKSTART, tmp_path / "run", overrides=overrides)
    rows = read_metrics(tmp_path / "run")
    assert 0 < rows[0]["epsilon"] < rows[1]["epsilon"] < math.inf
    assert summary.final_accuracy is not None and summary.final_accuracy > 0.2  # 10 classes: chance 0.1
