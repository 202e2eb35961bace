"""Privacy accounting: what each mechanism releases per round, as dp-accounting's events.

Epsilon comes from dp-accounting's RDP accountant (Renyi DP, Mironov 2017; the Poisson
subsampled Gaussian of Mironov, Talwar and Zhang 2019; sampling without replacement of
Wang, Balle and Kasiviswanathan 2019; the RDP-to-(epsilon, delta) conversion of Canonne,
Kamath and Steinke 2020).  This module only builds the events, composes them and asks
the library; it holds no privacy formula of its own.

The sensitivity each event's noise multiplier is relative to (noise std = z * C):

- central, Poisson sampling (add or remove one client): the sum of clipped updates
  moves by ``C`` -> ``PoissonSampledDpEvent(q, Gaussian(z))``;
- central, m of N without replacement: sampling a fixed number only makes sense with
  N public, i.e. replacing one client, which moves the sum by up to ``2C`` ->
  ``SampledWithoutReplacementDpEvent(N, m, Gaussian(z / 2))``;
- central adaptive clipping also releases the noised clipped count (Andrew et al.
  2021): its centred sum moves by 1/2 (add/remove) or 1 (replace), so the round is
  ``Composed([Gaussian(z_update), Gaussian(2 s)])`` with ``s`` the count's noise std,
  both halved under replace-one;
- local: any two updates of a client differ by up to ``2C`` -> ``Gaussian(z / 2)``
  per round the client takes part in, composed over those rounds;
- sample (DP-SGD, Abadi et al. 2016): per local step a Poisson sample of the client's
  examples with rate ``q = B / n``, one example moving the clipped sum by ``C`` ->
  ``SelfComposed(PoissonSampled(q, Gaussian(z)), steps)`` per round it takes part in.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import dp_accounting as dpa
import numpy as np
from dp_accounting import mechanism_calibration
from dp_accounting.rdp import RdpAccountant

NeighborRel: Any = dpa.NeighboringRelation  # untyped library: Any to mypy


@dataclass(frozen=True)
class Mechanism:
    """One release as dp-accounting sees it, and the neighbouring relation it is analysed under."""

    event: dpa.DpEvent
    relation: Any  # a NeighborRel


def central_round(
    noise: float, population: int, cohort: int, rate: float | None, count_noise: float | None = None
) -> Mechanism:
    """One DP-FedAvg round: ``cohort`` of ``population`` (``rate`` None) or Poisson with ``rate``.

    ``noise`` is the update's multiplier; ``count_noise`` the std of adaptive clipping's
    clipped-count noise (None with fixed clipping).
    """
    replace = rate is None
    scale = 0.5 if replace else 1.0  # replace-one doubles the sensitivity
    release: dpa.DpEvent = dpa.GaussianDpEvent(noise * scale)
    if count_noise is not None:
        # A tuple, not the annotated list: mechanisms are cache keys, so they must hash.
        count = dpa.GaussianDpEvent(2 * count_noise * scale)
        release = dpa.ComposedDpEvent((release, count))
    if replace:
        return Mechanism(
            dpa.SampledWithoutReplacementDpEvent(population, cohort, release), NeighborRel.REPLACE_ONE
        )
    return Mechanism(dpa.PoissonSampledDpEvent(rate, release), NeighborRel.ADD_OR_REMOVE_ONE)


def local_round(noise: float) -> Mechanism:
    """One noised update of one client (local DP): any two of its updates differ by ``2C``."""
    return Mechanism(dpa.GaussianDpEvent(noise / 2), NeighborRel.REPLACE_ONE)


def sample_round(noise: float, rate: float, steps: int) -> Mechanism:
    """One round of a client's DP-SGD: ``steps`` Poisson-sampled noisy steps."""
    step = dpa.PoissonSampledDpEvent(rate, dpa.GaussianDpEvent(noise))
    return Mechanism(dpa.SelfComposedDpEvent(step, steps), NeighborRel.ADD_OR_REMOVE_ONE)


@contextmanager
def _quiet() -> Iterator[None]:
    """dp-accounting logs (via absl) every RDP order whose series it drops; the result is still sound."""
    log = logging.getLogger("absl")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


@functools.lru_cache(maxsize=4096)
def epsilon(mechanism: Mechanism, count: int, delta: float) -> float:
    """Epsilon at ``delta`` of ``count`` adaptive compositions of ``mechanism`` (0 for none)."""
    if count == 0:
        return 0.0
    accountant = RdpAccountant(neighboring_relation=mechanism.relation)
    with _quiet():
        accountant.compose(mechanism.event, count)
        return float(accountant.get_epsilon(delta))


class Accountant(Protocol):
    """Privacy spent so far, for the server's round loop and checkpoints."""

    delta: float

    def epsilon(self, cohort: Sequence[int] | None = None) -> float:
        """Spent so far, or with ``cohort`` (partition ids) taking part in one more round."""
        ...

    def spend(self, cohort: Sequence[int]) -> None: ...
    def state(self) -> dict[str, Any]: ...
    def restore(self, state: dict[str, Any]) -> None: ...


class RoundAccountant:
    """Central DP: every round is one sampled release about every client, sampled or not."""

    def __init__(self, mechanism: Mechanism, delta: float) -> None:
        self.mechanism, self.delta = mechanism, delta
        self.rounds = 0

    def epsilon(self, cohort: Sequence[int] | None = None) -> float:
        return epsilon(self.mechanism, self.rounds + (cohort is not None), self.delta)

    def spend(self, cohort: Sequence[int]) -> None:
        self.rounds += 1

    def state(self) -> dict[str, Any]:
        return {"rounds": self.rounds}

    def restore(self, state: dict[str, Any]) -> None:
        self.rounds = int(state["rounds"])


class ParticipationAccountant:
    """Local and sample mode: a client spends only in the rounds it takes part in.

    ``mechanisms[kinds[k]]`` is partition ``k``'s release per round (``kinds`` None: one
    mechanism per partition); epsilon is the largest over the clients.  A sampled client
    counts whether or not its reply arrives: it may have been sent.  Only the clients that
    took part are kept, with each kind's largest count: a round costs its cohort, not the
    population (a million clients of one size are one kind).
    """

    def __init__(
        self, mechanisms: Sequence[Mechanism], delta: float, kinds: np.ndarray | None = None
    ) -> None:
        self.mechanisms, self.delta = list(mechanisms), delta
        self.kinds = np.arange(len(self.mechanisms)) if kinds is None else kinds
        self.taken: dict[int, int] = {}  # partition -> rounds it took part in (those that did)
        self.most: dict[int, int] = {}  # kind -> the largest count of its partitions

    def epsilon(self, cohort: Sequence[int] | None = None) -> float:
        most = dict(self.most)
        for pid in cohort or ():
            kind = int(self.kinds[pid])
            most[kind] = max(self.taken.get(pid, 0) + 1, most.get(kind, 0))
        return max((epsilon(self.mechanisms[k], count, self.delta) for k, count in most.items()), default=0.0)

    def spend(self, cohort: Sequence[int]) -> None:
        for pid in cohort:
            count = self.taken[pid] = self.taken.get(pid, 0) + 1
            kind = int(self.kinds[pid])
            self.most[kind] = max(count, self.most.get(kind, 0))

    def state(self) -> dict[str, Any]:
        order = sorted(self.taken)
        return {
            "partitions": np.array(order, dtype=np.int64),
            "counts": np.array([self.taken[p] for p in order], dtype=np.int64),
        }

    def restore(self, state: dict[str, Any]) -> None:
        if "taken" in state:  # written before 2026-11-29: one count per partition
            pairs = [(p, int(k)) for p, k in enumerate(state["taken"]) if int(k)]
        else:
            pairs = [(int(p), int(k)) for p, k in zip(state["partitions"], state["counts"], strict=True)]
        self.taken, self.most = {}, {}
        for pid, count in pairs:
            self.taken[pid] = count
            kind = int(self.kinds[pid])
            self.most[kind] = max(count, self.most.get(kind, 0))


def calibrate(make: Any, count: int, delta: float, target: float, upper: float | None = None) -> float:
    """The smallest noise multiplier ``z`` with ``epsilon(make(z), count, delta) <= target``.

    Bisection by dp-accounting's ``calibrate_dp_mechanism``; ``upper`` bounds ``z`` from
    above (adaptive clipping's ``z < 2 s``); ValueError if even that exceeds the target.
    """

    def event(z: float) -> dpa.DpEvent:
        return dpa.SelfComposedDpEvent(make(z).event, count)

    relation = make(1.0).relation
    bracket = (
        mechanism_calibration.ExplicitBracketInterval(1e-3, upper)
        if upper is not None
        else mechanism_calibration.LowerEndpointAndGuess(1e-3, 1.0)
    )
    with _quiet():
        z = mechanism_calibration.calibrate_dp_mechanism(
            lambda: RdpAccountant(neighboring_relation=relation), event, target, delta, bracket, tol=1e-4
        )
    return float(z)
