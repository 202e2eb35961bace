"""The run's privacy budget: delta's default, noise calibration, the planned cohorts, the stop."""

from __future__ import annotations

import subprocess
import sys

import dp_accounting as dpa
import numpy as np
import pytest
from dp_accounting.rdp import RdpAccountant

from fedsim.scenario.files import parse_scenario
from fedsim.scenario.sections import Scenario
from fedsim.scenario.tables import ScenarioError
from fedsim.sim import checkpoint
from strategies import budget
from strategies.accounting import ParticipationAccountant
from strategies.placement import Placement
from strategies.registry import build_strategy
from strategies.sampling import SeededSampling

SIZES = [60] * 100  # 100 clients of 60 examples


def scenario(*overrides: str) -> Scenario:
    base = ("data.num_clients=100", "strategy.fraction_train=0.1", "rounds=20", 'privacy.mode="central"')
    return parse_scenario('[data]\ndataset = "synthetic"\n[model]\nname = "mlp"', (*base, *overrides))


def test_delta_defaults_to_one_over_the_protected_units_to_the_power_1_1() -> None:
    assert budget.resolve(scenario(), SIZES).privacy.delta == pytest.approx(100**-1.1)  # type: ignore[union-attr]
    examples = budget.resolve(scenario('privacy.mode="sample"'), SIZES).privacy
    assert examples is not None and examples.delta == pytest.approx(6000**-1.1)  # sample mode: examples
    given = budget.resolve(scenario("privacy.delta=1e-7"), SIZES).privacy
    assert given is not None and given.delta == 1e-7


def test_adaptive_count_noise_defaults_to_the_cohort_over_20() -> None:
    resolved = budget.resolve(scenario('privacy.clipping="adaptive"', "privacy.noise_multiplier=0.5"), SIZES)
    assert resolved.privacy is not None and resolved.privacy.clipped_count_stddev == pytest.approx(10 / 20)


def test_auto_noise_is_the_smallest_that_keeps_the_planned_rounds_within_the_target() -> None:
    cfg = scenario(
        'privacy.sampling="poisson"', 'privacy.noise_multiplier="auto"', "privacy.target_epsilon=2.0"
    )
    resolved = budget.resolve(cfg, SIZES)
    assert resolved.privacy is not None
    z = resolved.privacy.noise
    assert (
        "noise_multiplier = " in resolved.to_toml() and 'noise_multiplier = "auto"' not in resolved.to_toml()
    )
    delta = 100**-1.1

    def independent(noise: float) -> float:
        accountant = RdpAccountant()
        accountant.compose(dpa.PoissonSampledDpEvent(0.1, dpa.GaussianDpEvent(noise)), 20)
        return float(accountant.get_epsilon(delta))

    assert independent(z) <= 2.0 < independent(0.99 * z)


def test_auto_noise_for_local_dp_covers_the_busiest_client() -> None:
    cfg = scenario('privacy.mode="local"', 'privacy.noise_multiplier="auto"', "privacy.target_epsilon=5.0")
    resolved = budget.resolve(cfg, SIZES)
    spent = budget.make_accountant(resolved, SIZES)
    for cohort in budget.planned_cohorts(resolved, 100):
        spent.spend(cohort)
    assert 4.9 < spent.epsilon() <= 5.0


def test_sample_mode_over_a_million_clients_calibrates_and_spends_per_participant() -> None:
    """One mechanism per client size, counts only for the clients sampled: a round costs its cohort."""
    sizes = np.full(1_000_000, 60)
    sizes[7] = 600  # one larger client: a second kind
    cfg = scenario(
        "data.num_clients=1000000",
        "strategy.fraction_train=0.0001",
        "rounds=5",
        'privacy.mode="sample"',
        'privacy.noise_multiplier="auto"',
        "privacy.target_epsilon=3.0",
    )
    resolved = budget.resolve(cfg, sizes)
    spent = budget.Budget(resolved, sizes)
    for cohort in budget.planned_cohorts(resolved, 1_000_000):
        spent.spend(cohort)
    accountant = spent.accountant
    assert isinstance(accountant, ParticipationAccountant) and len(accountant.mechanisms) == 2
    assert len(accountant.taken) <= 5 * 100 and 2.9 < spent.epsilon() <= 3.0


def test_an_unreachable_target_is_a_scenario_error() -> None:
    cfg = scenario(
        'privacy.clipping="adaptive"',
        "privacy.clipped_count_stddev=0.1",  # Flower needs z < 0.2, far too little noise
        'privacy.noise_multiplier="auto"',
        "privacy.target_epsilon=0.5",
    )
    with pytest.raises(ScenarioError, match=r"privacy\.target_epsilon: no noise multiplier reaches 0.5"):
        budget.resolve(cfg, SIZES)


@pytest.mark.parametrize("sampling", ["fixed", "poisson"])
def test_planned_cohorts_are_those_the_server_samples(sampling: str) -> None:
    cfg = scenario(f'privacy.sampling="{sampling}"')
    nodes = {500 + p: p for p in range(100)}
    server: SeededSampling = build_strategy(cfg, Placement.fixed(nodes))
    planned = budget.planned_cohorts(cfg, 100)
    assert planned == [server.sampled_partitions("train", r) for r in range(1, 21)]
    sizes = {len(c) for c in planned}
    assert sizes == {10} if sampling == "fixed" else len(sizes) > 1  # Poisson: the cohort varies


def test_the_budget_refuses_the_first_round_that_would_exceed_the_target() -> None:
    cfg = budget.resolve(scenario('privacy.sampling="poisson"', "privacy.target_epsilon=1.5"), SIZES)
    spent = budget.Budget(cfg, SIZES)
    rounds = 0
    while (refusal := spent.refusal(rounds + 1, [])) is None:
        spent.spend([])
        rounds += 1
    assert 0 < rounds < 20 and spent.epsilon() <= 1.5
    assert f"stopped before round {rounds + 1}" in refusal and "> privacy.target_epsilon = 1.5" in refusal
    copy = budget.Budget(cfg, SIZES)
    checkpoint.restore(copy, checkpoint.collect(spent, "budget"), "budget")
    assert copy.epsilon() == spent.epsilon()


def test_without_a_target_every_round_may_run() -> None:
    spent = budget.Budget(budget.resolve(scenario(), SIZES), SIZES)
    assert spent.refusal(1, [0, 1]) is None and spent.target is None


def test_the_engine_loads_dp_accounting_only_for_private_runs() -> None:
    """dp-accounting and SciPy add 0.7 s to every start; only an accountant needs them."""
    check = "import sys, fedsim.sim.engine; print('dp_accounting' in sys.modules, 'scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
