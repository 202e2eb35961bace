"""The [privacy] section: each mode's defaults, and the combinations refused with exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fedsim.scenario.describe import guarantee
from fedsim.scenario.files import parse_scenario
from fedsim.scenario.privacy import default_delta
from fedsim.scenario.tables import ScenarioError
from fedsim.sim import engine
from tests.conftest import REPO

QUICKSTART = (REPO / "fedsim" / "quickstart.toml").read_text()


def privacy(*overrides: str) -> tuple[str, ...]:
    return tuple(f"privacy.{o}" for o in overrides)


def test_each_mode_fills_its_own_defaults_only() -> None:
    central = parse_scenario(QUICKSTART, privacy('mode="central"')).privacy
    assert central is not None
    assert (central.clipping, central.where, central.clipping_norm, central.sampling) == (
        "fixed",
        "server",
        1.0,
        "fixed",
    )
    assert central.max_grad_norm is None and central.initial_clipping_norm is None
    adaptive = parse_scenario(
        QUICKSTART, privacy('mode="central"', 'clipping="adaptive"', "noise_multiplier=0.5")
    ).privacy
    assert adaptive is not None and adaptive.clipping_norm is None
    assert (adaptive.initial_clipping_norm, adaptive.target_quantile, adaptive.clip_lr) == (0.1, 0.5, 0.2)
    sample = parse_scenario(QUICKSTART, privacy('mode="sample"')).privacy
    assert (
        sample is not None
        and sample.max_grad_norm == 1.0
        and sample.clipping is None
        and sample.unit == "example"
    )


def test_auto_noise_survives_the_round_trip_through_toml() -> None:
    scenario = parse_scenario(
        QUICKSTART, privacy('mode="local"', 'noise_multiplier="auto"', "target_epsilon=8")
    )
    assert parse_scenario(scenario.to_toml()) == scenario
    assert scenario.privacy is not None and scenario.privacy.noise_multiplier == "auto"


def test_default_delta_is_below_one_over_the_units() -> None:
    assert default_delta(1000) == pytest.approx(1000**-1.1) and default_delta(1000) < 1 / 1000


def test_the_guarantee_names_what_is_protected_and_the_delta() -> None:
    central = parse_scenario(QUICKSTART, privacy('mode="central"', 'sampling="poisson"', "delta=1e-5"))
    line = guarantee(central, 30)
    assert (
        "client-level central DP" in line and "each client's whole data" in line and "delta = 1e-05" in line
    )
    assert "Poisson sampling with q = 0.34 of 30 clients" in line
    sample = guarantee(parse_scenario(QUICKSTART, privacy('mode="sample"', "delta=1e-6")), 30)
    assert "protects each training example" in sample and "delta = 1e-06" in sample


def fedsim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fedsim", *args], capture_output=True, text=True, cwd=REPO)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            privacy('mode="central"', "noise_multiplier=-0.5"),
            "privacy.noise_multiplier: expected a value > 0, got -0.5",
        ),
        (
            privacy('mode="central"', 'clipping="adaptive"', "noise_multiplier=1.0"),
            "privacy.noise_multiplier: Flower's adaptive clipping needs noise_multiplier < 2 * "
            "clipped_count_stddev = 1 (the default: 10 / 20), got 1",
        ),
        (
            privacy('mode="central"', 'clipping="adaptive"', "target_quantile=1.5"),
            "privacy.target_quantile: expected a value <= 1, got 1.5",
        ),
        (
            privacy('mode="central"', "clip_lr=0.1"),
            "privacy.clip_lr: only used by 'central/adaptive', not 'central/fixed'",
        ),
        (
            privacy('mode="sample"', 'where="client"'),
            "privacy.where: only used by 'central/fixed' or 'central/adaptive'",
        ),
        (
            privacy('mode="central"', 'noise_multiplier="auto"'),
            "privacy.noise_multiplier: 'auto' calibrates the noise to privacy.target_epsilon: set it",
        ),
        (
            privacy('mode="central"', 'noise_multiplier="lots"'),
            "privacy.noise_multiplier: expected a number or 'auto'",
        ),
        (
            (*privacy('mode="central"'), 'strategy.name="krum"'),
            "privacy.mode: 'central' noises the mean of the clipped updates",
        ),
        (privacy("delta=0.01"), "privacy.mode: missing"),
        (privacy('mode="central"', "delta=1.0"), "privacy.delta: expected a value < 1, got 1.0"),
    ],
)
def test_invalid_privacy_settings_exit_2_with_one_line(overrides: tuple[str, ...], expected: str) -> None:
    args = [a for o in overrides for a in ("--set", o)]
    result = fedsim("validate", *args)
    assert result.returncode == 2
    assert result.stderr.startswith(f"fedsim: error: {expected}") and result.stderr.count("\n") == 1


def test_poisson_sampling_counts_the_clients_the_data_give() -> None:
    """Shakespeare's roles decide the client count when the data load, before the guarantee is said."""
    result = fedsim(
        "validate",
        "scenarios/shakespeare_lstm.toml",
        "--set",
        'privacy.mode="central"',
        "--set",
        'privacy.sampling="poisson"',
    )
    assert result.returncode == 0, result.stderr
    assert "Poisson sampling with q = 0.1 of 220 clients" in " ".join(result.stderr.split())


def test_a_target_no_noise_reaches_is_refused_before_the_run(tmp_path: Path) -> None:
    scenario = parse_scenario(
        QUICKSTART,
        privacy(
            'mode="central"',
            'clipping="adaptive"',
            "clipped_count_stddev=0.05",
            'noise_multiplier="auto"',
            "target_epsilon=0.1",
        ),
    )
    with pytest.raises(ScenarioError, match=r"privacy\.target_epsilon: no noise multiplier reaches 0\.1"):
        engine.prepare(scenario, tmp_path / "run", None)
    assert not (tmp_path / "run").exists()  # refused before the run folder


@pytest.mark.parametrize(
    "name", ["mnist_dp_central", "mnist_dp_adaptive", "mnist_dp_sample", "shakespeare_dp_central"]
)
def test_shipped_dp_scenarios_validate(name: str) -> None:
    result = fedsim("validate", f"scenarios/{name}.toml")
    assert result.returncode == 0, result.stderr
