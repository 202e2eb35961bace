"""A training round's plan: which clients train, which of them fail or straggle, how long they take.

Everything is drawn from named streams of the seed (``fedsim.scenario.seeding``), so a run and
its repetition, a resumed run included, plan alike whatever the number of Ray actors:

- the sample: ``(seed, "sample", "train", round)``, as :class:`SeededSampling` draws it
  (``m`` of ``N``, or Poisson with rate ``fraction_train`` under ``privacy.sampling``);
- a client's fault (``[faults]``): ``(seed, "faults", round, partition id)``, one uniform
  number cut into failure, crash and dropout shares, so the kinds exclude each other;
- the stragglers (``[stragglers]``): ``stragglers.fraction`` of the sample, drawn from
  ``(seed, "stragglers", round)``; each runs ``(seed, "straggler-epochs", round, partition
  id)`` local epochs, uniform in ``[1, E]`` (Li et al. 2020, FedProx, Section 5.2);
- who can be sampled: the clients online when the round starts (``[devices] availability``,
  strategies/devices.py); how long each takes is the virtual clock's (strategies/clock.py).

A retried round (``faults.round_retries``) extends each stream with its attempt number,
so it draws a new sample with new faults rather than failing the same way again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedsim import protocol as keys
from fedsim.scenario.counts import cohort_size, straggler_count
from fedsim.scenario.sections import FaultsConfig, Scenario
from fedsim.scenario.seeding import generator
from strategies.draws import poisson_partitions, retry_path, sample_partitions

FAULTS = ("fail", "crash", "dropout")  # in the order their shares cut the unit interval


@dataclass(frozen=True)
class ClientPlan:
    """What one sampled client does this round."""

    partition: int
    epochs: int  # local epochs to run: E, or fewer for a straggler
    fault: str = ""  # "", or one of FAULTS
    straggler: bool = False

    def config(self) -> dict[str, int | str]:
        """Keys its train message adds to the round's config; none for a plain client."""
        extra: dict[str, int | str] = {}
        if self.straggler:
            extra[keys.LOCAL_EPOCHS] = self.epochs
        if self.fault in ("fail", "crash"):  # a dropout never gets its message
            extra[keys.FAULT] = self.fault
        return extra


@dataclass(frozen=True)
class RoundPlan:
    server_round: int
    attempt: int  # 0, or the retry
    clients: tuple[ClientPlan, ...]  # the sample, in partition order
    drop_stragglers: bool  # stragglers.policy = "drop": they get no message and nobody waits for them

    @property
    def sampled(self) -> list[int]:
        return [c.partition for c in self.clients]

    @property
    def stragglers(self) -> int:
        return sum(c.straggler for c in self.clients)

    def of(self, partition: int) -> ClientPlan:
        return next(c for c in self.clients if c.partition == partition)

    def trains(self) -> list[int]:
        """Partitions that get a train message: all but dropped stragglers."""
        return [c.partition for c in self.clients if not (c.straggler and self.drop_stragglers)]


def plan_round(
    scenario: Scenario, server_round: int, attempt: int, population: int, online: np.ndarray | None = None
) -> RoundPlan:
    """``online``: a mask of the clients that can be sampled (None: all of them)."""
    seed, epochs = scenario.seed, scenario.client.local_epochs
    sampled = train_sample(scenario, server_round, attempt, population, online)
    stragglers = choose_stragglers(seed, scenario.stragglers.fraction, server_round, attempt, sampled)
    clients = tuple(
        ClientPlan(
            partition=p,
            epochs=straggler_epochs(seed, server_round, attempt, p, epochs) if p in stragglers else epochs,
            fault=fault_of(seed, scenario.faults, server_round, attempt, p),
            straggler=p in stragglers,
        )
        for p in sampled
    )
    return RoundPlan(server_round, attempt, clients, scenario.stragglers.policy == "drop")


def train_sample(
    scenario: Scenario, server_round: int, attempt: int, population: int, online: np.ndarray | None = None
) -> list[int]:
    """The partition ids sampled for an attempt at ``server_round``, sorted; only ``online`` ones
    where a mask is given and some client is offline (then as many as are online, at most)."""
    seed = scenario.seed
    poisson = scenario.privacy is not None and scenario.privacy.sampling == "poisson"
    size = scenario.train_sample_size(population)
    if online is not None and not online.all():
        ids = np.flatnonzero(online)
        if poisson:
            mask = poisson_partitions(
                seed, "train", server_round, population, scenario.strategy.fraction_train, attempt
            )
            return [p for p in mask if online[p]]
        chosen = sample_partitions(seed, "train", server_round, len(ids), min(size, len(ids)), attempt)
        return [int(ids[i]) for i in chosen]
    if poisson:
        rate = scenario.strategy.fraction_train
        return poisson_partitions(seed, "train", server_round, population, rate, attempt)
    return sample_partitions(seed, "train", server_round, population, size, attempt)


def largest_stage(scenario: Scenario, population: int) -> int:
    """The most clients one stage of the run addresses: the nodes a simulation's pool needs.

    A fixed-size sample is the same size every round; a Poisson one is drawn here for
    every round and retry, as the rounds will draw it (a function of the seed).
    """
    rounds, attempts = range(1, scenario.rounds + 1), range(scenario.faults.round_retries + 1)
    poisson = scenario.privacy is not None and scenario.privacy.sampling == "poisson"
    if poisson:
        train = max(len(train_sample(scenario, r, a, population)) for r in rounds for a in attempts)
    else:
        train = scenario.train_sample_size(population)
    evaluate = cohort_size(scenario.strategy.fraction_evaluate, population, 1)
    return max(1, train, evaluate)


def fault_of(seed: int, cfg: FaultsConfig, server_round: int, attempt: int, partition: int) -> str:
    shares = (cfg.failure_rate, cfg.crash_rate, cfg.dropout_rate)
    if not any(shares):
        return ""
    u = generator(seed, "faults", server_round, partition, *retry_path(attempt)).random()
    for fault, edge in zip(FAULTS, np.cumsum(shares), strict=True):
        if u < edge:
            return fault
    return ""


def choose_stragglers(
    seed: int, fraction: float, server_round: int, attempt: int, sampled: list[int]
) -> frozenset[int]:
    count = straggler_count(fraction, len(sampled))
    if count == 0:
        return frozenset()
    rng = generator(seed, "stragglers", server_round, *retry_path(attempt))
    return frozenset(int(p) for p in rng.choice(sampled, size=count, replace=False))


def straggler_epochs(seed: int, server_round: int, attempt: int, partition: int, local_epochs: int) -> int:
    rng = generator(seed, "straggler-epochs", server_round, partition, *retry_path(attempt))
    return int(rng.integers(1, local_epochs + 1))
