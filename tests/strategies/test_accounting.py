"""Privacy accounting: the events we build, checked against dp-accounting, Opacus and published numbers."""

from __future__ import annotations

import math

import dp_accounting as dpa
import numpy as np
import pytest
from dp_accounting.rdp import RdpAccountant
from opacus.accountants import RDPAccountant as OpacusRDP

from strategies import accounting
from strategies.accounting import NeighborRel, ParticipationAccountant, RoundAccountant


def library_epsilon(event: dpa.DpEvent, delta: float, relation: NeighborRel) -> float:
    accountant = RdpAccountant(neighboring_relation=relation)
    accountant.compose(event)
    return float(accountant.get_epsilon(delta))


@pytest.mark.parametrize(
    ("noise", "epochs", "published"),
    [(1.1, 60, 3.01), (1.3, 15, 1.19), (0.7, 45, 7.10)],
)
def test_dp_sgd_rdp_reproduces_the_tensorflow_privacy_mnist_table(
    noise: float, epochs: int, published: float
) -> None:
    """TF Privacy's MNIST tutorial (N = 60000, batch 256, delta = 1e-5) publishes epsilon 3.01,
    1.19 and 7.10, converted from RDP with Mironov's bound ``min_a rdp(a) + log(1/delta) / (a - 1)``."""
    steps = math.ceil(epochs * 60000 / 256)
    mechanism = accounting.sample_round(noise, rate=256 / 60000, steps=steps)
    rdp_accountant = RdpAccountant(neighboring_relation=mechanism.relation)
    rdp_accountant.compose(mechanism.event)
    orders, rdp = rdp_accountant.orders, rdp_accountant.rdp
    classic = float(np.min(rdp + math.log(1 / 1e-5) / (orders - 1)))
    assert round(classic, 2) == published
    # What we report uses the library's tighter conversion: never more than the published bound.
    reported = accounting.epsilon(mechanism, 1, 1e-5)
    assert 0.75 * published < reported <= classic


def test_poisson_central_round_is_the_subsampled_gaussian_at_the_noise_multiplier() -> None:
    mechanism = accounting.central_round(1.0, population=1000, cohort=100, rate=0.1)
    expected = dpa.SelfComposedDpEvent(dpa.PoissonSampledDpEvent(0.1, dpa.GaussianDpEvent(1.0)), 30)
    got = accounting.epsilon(mechanism, 30, 1e-4)
    assert got == pytest.approx(library_epsilon(expected, 1e-4, NeighborRel.ADD_OR_REMOVE_ONE), rel=1e-12)
    assert 0 < got < accounting.epsilon(mechanism, 31, 1e-4)  # more rounds, more epsilon


def test_fixed_size_sampling_is_replace_one_with_twice_the_sensitivity() -> None:
    """Replacing one client moves the sum of clipped updates by up to 2C: multiplier z / 2."""
    mechanism = accounting.central_round(2.0, population=100, cohort=10, rate=None)
    assert mechanism.relation == NeighborRel.REPLACE_ONE
    expected = dpa.SelfComposedDpEvent(
        dpa.SampledWithoutReplacementDpEvent(100, 10, dpa.GaussianDpEvent(1.0)), 20
    )
    got = accounting.epsilon(mechanism, 20, 1e-3)
    assert got == pytest.approx(library_epsilon(expected, 1e-3, NeighborRel.REPLACE_ONE), rel=1e-12)


def test_adaptive_clipping_pays_for_the_clipped_count_query() -> None:
    """Update noise z_u and count noise s compose to one Gaussian of multiplier (z_u^-2 + (2s)^-2)^-1/2."""
    update, count = 1.2, 2.0
    adaptive = accounting.central_round(update, 1000, 100, 0.1, count_noise=count)
    update_alone = accounting.central_round(update, 1000, 100, 0.1)
    effective = (update**-2 + (2 * count) ** -2) ** -0.5
    same = accounting.central_round(effective, 1000, 100, 0.1)
    assert accounting.epsilon(adaptive, 10, 1e-4) > accounting.epsilon(update_alone, 10, 1e-4)
    assert accounting.epsilon(adaptive, 10, 1e-4) == pytest.approx(
        accounting.epsilon(same, 10, 1e-4), rel=1e-9
    )


def test_local_rounds_compose_over_the_rounds_a_client_takes_part_in() -> None:
    accountant = ParticipationAccountant([accounting.local_round(4.0)] * 3, delta=1e-5)
    accountant.spend([0, 1])
    accountant.spend([0])
    per_round = library_epsilon(dpa.GaussianDpEvent(2.0), 1e-5, NeighborRel.REPLACE_ONE)
    twice = library_epsilon(
        dpa.SelfComposedDpEvent(dpa.GaussianDpEvent(2.0), 2), 1e-5, NeighborRel.REPLACE_ONE
    )
    assert accountant.epsilon() == pytest.approx(twice)  # client 0: the most spent
    assert accountant.epsilon([1, 2]) == pytest.approx(twice)  # client 1 would reach 2 too
    assert accountant.epsilon([0]) > twice
    assert per_round < twice


def test_sample_mode_epsilon_agrees_with_opacus_rdp_accountant() -> None:
    """Opacus computes the same Poisson-subsampled Gaussian with its own code."""
    rate, noise, steps = 64 / 6000, 1.0, 470
    ours = accounting.epsilon(accounting.sample_round(noise, rate, steps), 1, 1e-5)
    opacus = OpacusRDP()
    for _ in range(steps):
        opacus.step(noise_multiplier=noise, sample_rate=rate)
    assert ours == pytest.approx(opacus.get_epsilon(1e-5), rel=0.02)


def test_participation_epsilon_is_the_largest_over_clients_of_different_sizes() -> None:
    small, large = accounting.sample_round(1.0, 0.5, 4), accounting.sample_round(1.0, 0.01, 100)
    accountant = ParticipationAccountant([small, large], delta=1e-5)
    accountant.spend([0, 1])
    assert accountant.epsilon() == max(accounting.epsilon(small, 1, 1e-5), accounting.epsilon(large, 1, 1e-5))


def test_accountants_restore_their_state() -> None:
    rounds = RoundAccountant(accounting.central_round(1.0, 100, 10, 0.1), delta=1e-3)
    rounds.spend([])
    rounds.spend([3])
    again = RoundAccountant(rounds.mechanism, delta=1e-3)
    again.restore(rounds.state())
    assert again.epsilon() == rounds.epsilon() > 0 and again.rounds == 2
    clients = ParticipationAccountant([accounting.local_round(3.0)] * 4, delta=1e-3)
    clients.spend([1, 2])
    copy = ParticipationAccountant(clients.mechanisms, delta=1e-3)
    copy.restore(clients.state())
    assert copy.taken == {1: 1, 2: 1} and copy.epsilon() == clients.epsilon()


def test_a_checkpoint_of_one_count_per_partition_still_restores() -> None:
    """Checkpoints written before the accountant kept only the clients that took part."""
    clients = ParticipationAccountant([accounting.local_round(3.0)], 1e-3, np.zeros(4, dtype=np.int8))
    clients.restore({"taken": [0, 2, 1, 0]})
    assert clients.taken == {1: 2, 2: 1} and clients.most == {0: 2}


def test_clients_of_one_kind_share_a_mechanism_and_only_participants_are_kept() -> None:
    """A million clients of one size: one mechanism, and state the size of the cohorts so far."""
    population = 1_000_000
    clients = ParticipationAccountant(
        [accounting.local_round(3.0)], 1e-3, np.zeros(population, dtype=np.int8)
    )
    clients.spend([5, 999_999])
    clients.spend([5])
    per_partition = ParticipationAccountant([accounting.local_round(3.0)] * 6, delta=1e-3)
    per_partition.spend([5, 0])
    per_partition.spend([5])
    assert clients.epsilon() == per_partition.epsilon() > 0
    assert clients.epsilon([999_999]) == clients.epsilon()  # it would reach 2, as client 5 has
    state = clients.state()
    assert state["partitions"].tolist() == [5, 999_999] and state["counts"].tolist() == [2, 1]


def test_nothing_spent_is_epsilon_zero() -> None:
    assert RoundAccountant(accounting.central_round(1.0, 100, 10, 0.1), delta=1e-3).epsilon() == 0.0
    assert ParticipationAccountant([accounting.local_round(1.0)], delta=1e-3).epsilon() == 0.0


def test_calibration_finds_the_smallest_noise_within_the_target() -> None:
    def make(z: float) -> accounting.Mechanism:
        return accounting.central_round(z, 1000, 100, 0.1)

    z = accounting.calibrate(make, 30, 1e-4, target=2.0)
    assert accounting.epsilon(make(z), 30, 1e-4) <= 2.0
    assert accounting.epsilon(make(z * 0.99), 30, 1e-4) > 2.0


def test_calibration_under_an_upper_bound_that_cannot_reach_the_target_fails() -> None:
    with pytest.raises(ValueError):
        accounting.calibrate(accounting.local_round, 100, 1e-5, target=0.01, upper=1.0)
