"""A run's privacy budget: delta's default, ``noise_multiplier = "auto"``, the accountant, the stop.

:func:`resolve` runs once the data are loaded (it needs the client count, and in
sample mode each client's number of examples) and before the run folder is written,
so ``scenario.toml`` records the delta, clipped-count noise and noise multiplier used.
:class:`Budget` is the server's view during the run: what the next round would
spend, and whether it still fits ``target_epsilon``.

With a target, a run never reports more than it: ``"auto"`` calibrates the noise so
the planned rounds spend at most the target; a fixed noise multiplier trains up to the
last round that stays within it and says so (``Summary.privacy_stop``).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from flwr.supercore.differential_privacy import compute_adaptive_noise_params

from fedsim.scenario.privacy import PrivacyConfig, default_delta
from fedsim.scenario.sections import Scenario
from fedsim.scenario.tables import ScenarioError

if TYPE_CHECKING:  # loaded where used: dp-accounting and SciPy take 0.7 s, and only private runs need them
    from strategies import accounting
from fedsim.scenario.counts import cohort_size
from strategies.plan import plan_round

Sizes = Sequence[int] | np.ndarray  # each partition's training examples (FederatedData.clients.sizes())


def central_mechanism(scenario: Scenario, population: int, noise: float) -> accounting.Mechanism:
    """One round of central DP as the scenario runs it, at noise multiplier ``noise``."""
    from strategies import accounting

    privacy = _privacy(scenario)
    cfg = scenario.strategy
    cohort = cohort_size(cfg.fraction_train, population, cfg.min_train_clients)
    rate = cfg.fraction_train if privacy.sampling == "poisson" else None
    if privacy.clipping != "adaptive":
        return accounting.central_round(noise, population, cohort, rate)
    stddev = scenario.count_stddev(population)
    # Flower raises the update's noise so that update and count together have multiplier ``noise``.
    _, update_noise = compute_adaptive_noise_params(noise, scenario.expected_cohort(population), stddev)
    return accounting.central_round(update_noise, population, cohort, rate, count_noise=stddev)


def sample_mechanism(scenario: Scenario, examples: int, noise: float) -> accounting.Mechanism:
    """One round of DP-SGD on a client holding ``examples`` (clients/dpsgd.py's sampling)."""
    from strategies import accounting

    client = scenario.client
    rate = min(1.0, client.batch_size / examples)
    steps = client.local_steps(examples)
    return accounting.sample_round(noise, rate, steps)


def make_accountant(scenario: Scenario, sizes: Sizes) -> accounting.Accountant:
    """The accountant for the resolved scenario; ``sizes[k]``: partition ``k``'s training examples.

    Sample mode: one mechanism per distinct client size, not per client.
    """
    from strategies import accounting

    privacy = _privacy(scenario)
    delta, noise = _given(privacy.delta), privacy.noise
    if privacy.mode == "central":
        return accounting.RoundAccountant(central_mechanism(scenario, len(sizes), noise), delta)
    if privacy.mode == "local":
        one_kind = np.zeros(len(sizes), dtype=np.int8)
        return accounting.ParticipationAccountant([accounting.local_round(noise)], delta, one_kind)
    distinct, kinds = np.unique(np.asarray(sizes, dtype=np.int64), return_inverse=True)
    mechanisms = [sample_mechanism(scenario, int(n), noise) for n in distinct]
    return accounting.ParticipationAccountant(mechanisms, delta, kinds)


def planned_cohorts(scenario: Scenario, population: int) -> list[list[int]]:
    """The partition ids each planned round will train (plans are a function of the seed).

    Retries (``faults.round_retries``) are not planned: they are spent as they happen.
    """
    return [plan_round(scenario, r, 0, population).trains() for r in range(1, scenario.rounds + 1)]


def resolve(scenario: Scenario, sizes: Sizes) -> Scenario:
    """The scenario with delta, clipped-count noise and an ``"auto"`` noise multiplier filled in."""
    privacy = scenario.privacy
    if privacy is None:
        return scenario
    units = int(np.sum(sizes)) if privacy.mode == "sample" else len(sizes)
    changes: dict[str, Any] = {}
    if privacy.delta is None:
        changes["delta"] = default_delta(units)
    if privacy.clipping == "adaptive" and privacy.clipped_count_stddev is None:
        changes["clipped_count_stddev"] = scenario.count_stddev(len(sizes))
    resolved = _with(scenario, changes)
    if privacy.noise_multiplier == "auto":
        resolved = _with(resolved, {"noise_multiplier": calibrated_noise(resolved, sizes)})
    return resolved


def calibrated_noise(scenario: Scenario, sizes: Sizes) -> float:
    """The smallest noise multiplier whose planned rounds spend at most ``target_epsilon``."""
    from strategies import accounting

    privacy = _privacy(scenario)
    delta, target = _given(privacy.delta), _given(privacy.target_epsilon)
    population = len(sizes)
    try:
        if privacy.mode == "central":
            upper = None
            if privacy.clipping == "adaptive":  # Flower's limit, z < 2 s
                upper = 2 * scenario.count_stddev(population) * (1 - 1e-6)
            return accounting.calibrate(
                lambda z: central_mechanism(scenario, population, z), scenario.rounds, delta, target, upper
            )
        most = most_taken(sizes, planned_cohorts(scenario, population))
        if privacy.mode == "local":
            return accounting.calibrate(accounting.local_round, max(most.values(), default=0), delta, target)
        return max(
            accounting.calibrate(lambda z, n=n: sample_mechanism(scenario, n, z), k, delta, target)
            for n, k in most.items()
        )
    except ValueError as error:
        raise ScenarioError(
            "privacy.target_epsilon",
            f"no noise multiplier reaches {target:g} in {scenario.rounds} rounds ({error})",
        ) from None


def most_taken(sizes: Sizes, cohorts: Sequence[Sequence[int]]) -> dict[int, int]:
    """Per client size, the most rounds a client of that size takes part in (sizes taken by none
    left out): over the clients that take part, not the population."""
    taken = Counter(pid for cohort in cohorts for pid in cohort)
    most: dict[int, int] = {}
    for pid, count in taken.items():
        n = int(sizes[pid])
        most[n] = max(count, most.get(n, 0))
    return most


class BudgetSpent(Exception):
    """The next training attempt would spend more than ``target_epsilon``: why, in one line."""


class Budget:
    """The accountant of a run, and ``target_epsilon``: may the next round be run?

    Checkpoints keep the accountant (rounds, or each client's participations; it is
    Stateful, fedsim/sim/checkpoint.py); the rest is the scenario's.
    """

    def __init__(self, scenario: Scenario, sizes: Sizes) -> None:
        privacy = _privacy(scenario)
        self.accountant = make_accountant(scenario, sizes)
        self.target = privacy.target_epsilon
        self.delta = self.accountant.delta

    def refusal(self, server_round: int, cohort: Sequence[int]) -> str | None:
        """Why ``server_round`` (training ``cohort``) must not run, or None if it fits the budget."""
        if self.target is None:
            return None
        after = self.accountant.epsilon(cohort)
        if after <= self.target:
            return None
        return (
            f"stopped before round {server_round}: it would spend epsilon {after:.4g} > "
            f"privacy.target_epsilon = {self.target:g} (spent: {self.epsilon():.4g})"
        )

    def spend(self, cohort: Sequence[int]) -> None:
        self.accountant.spend(cohort)

    def epsilon(self) -> float:
        return self.accountant.epsilon()


def _with(scenario: Scenario, changes: dict[str, Any]) -> Scenario:
    if not changes:
        return scenario
    privacy = dataclasses.replace(_privacy(scenario), **changes)
    return dataclasses.replace(scenario, privacy=privacy)


def _privacy(scenario: Scenario) -> PrivacyConfig:
    if scenario.privacy is None:
        raise ValueError("the scenario has no [privacy] section")
    return scenario.privacy


def _given(value: float | None) -> float:
    if value is None:  # resolve() fills delta; target_epsilon is checked by PrivacyConfig
        raise ValueError("privacy parameter not resolved")
    return value
