"""Central differential privacy around a registry strategy, on Flower's DP wrappers.

DP-FedAvg (McMahan et al. 2018, "Learning Differentially Private Recurrent Language
Models"): each client update ``y_i - x`` is clipped to L2 norm ``C``, the server
forms ``x + sum_i clip(y_i - x) / D`` and adds ``N(0, (z C / D)^2)`` per coordinate.
``D`` is the expected cohort (``m`` for m-of-N sampling, ``q N`` for Poisson): McMahan
et al.'s fixed-denominator estimator, so one client moves the mean by at most ``C / D``
whoever else answered.  Clipping runs in Flower's ``DifferentialPrivacy{Server,Client}
Side{Fixed,Adaptive}Clipping`` wrappers (client side: ``fixedclipping_mod`` and
``adaptiveclipping_mod``, see clients/privacy.py); adaptive clipping follows Andrew et
al. 2021, "Differentially Private Learning with Adaptive Clipping".

As in pfl-research, privacy is a step between the clients and the algorithm: the
noised mean goes to the registry strategy as its one reply, so FedAvgM, FedAdam,
FedYogi and FedAdagrad take their server step on the private mean (post-processing),
never on raw updates.  Changes to Flower's wrappers, all in small overrides:

- the noise comes from ``generator(seed, "dp", round)`` (Flower draws from NumPy's
  global generator, so runs could not be repeated);
- the clipped count of adaptive clipping is Andrew et al.'s centred estimate
  ``(sum_i (b_i - 1/2) + N(0, s^2)) / D + 1/2`` (Flower divides the raw count by the
  replies, whose number is itself private under Poisson sampling), and the norm moves
  as in their Algorithm 1: up when more than the target share is clipped (Flower 1.42
  multiplies by ``exp(-lr (clipped - target))``, which moves it away from the target);
- the noise scales with the norm the round's updates were clipped to (Flower's adaptive
  wrappers move the norm first and then scale the noise with the new one, too little
  noise whenever the norm shrinks);
- a reply equal to the global model skips server-side clipping (Flower's divides by
  the update's norm, so one free-riding client would crash the round); it adds nothing
  to the sum and counts as unclipped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import (
    DifferentialPrivacyClientSideAdaptiveClipping,
    DifferentialPrivacyClientSideFixedClipping,
    DifferentialPrivacyServerSideAdaptiveClipping,
    DifferentialPrivacyServerSideFixedClipping,
    Strategy,
)
from flwr.supercore.differential_privacy import compute_stdv

from fedsim import protocol as keys
from fedsim.scenario.privacy import PrivacyConfig
from fedsim.scenario.sections import Scenario
from fedsim.scenario.seeding import generator


def noised(arrays: ArrayRecord, std: float, rng: np.random.Generator) -> ArrayRecord:
    """``arrays`` plus ``N(0, std^2)`` per coordinate, drawn in key order, dtypes kept."""
    out = {}
    for name, array in arrays.items():
        values = array.numpy()
        out[name] = Array(values + rng.normal(0.0, std, values.shape).astype(values.dtype))
    return ArrayRecord(out)


def _unmoved(reply: Message, current: ArrayRecord) -> bool:
    arrays = reply.content.array_records[keys.ARRAYS]
    return all(np.array_equal(arrays[name].numpy(), array.numpy()) for name, array in current.items())


class _AroundAlgorithm(Strategy):
    """A wrapper that changes training only: evaluation and the summary are ``algorithm``'s."""

    algorithm: Strategy

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        return self.algorithm.configure_evaluate(server_round, arrays, config, grid)

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        return self.algorithm.aggregate_evaluate(server_round, replies)

    def summary(self) -> None:
        self.algorithm.summary()


class MeanOfUpdates(_AroundAlgorithm):
    """``x + sum_i (y_i - x) / D`` of the (clipped) replies: the estimator the noise protects.

    Every client weighs the same, whatever its number of examples: a weight would let one
    client move the mean by more than ``C / D``.  Messages and evaluation are the
    algorithm's.
    """

    def __init__(self, algorithm: Strategy, denominator: float) -> None:
        self.algorithm, self.denominator = algorithm, denominator
        self.x = ArrayRecord()

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self.x = arrays
        return self.algorithm.configure_train(server_round, arrays, config, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        contents = [r.content for r in replies if not r.has_error()]
        mean = {}
        for name, array in self.x.items():
            x = array.numpy()
            total = sum((c.array_records[keys.ARRAYS][name].numpy() - x for c in contents), np.zeros_like(x))
            mean[name] = Array(x + total / x.dtype.type(self.denominator))
        losses = [keys.number(c.metric_records[keys.METRICS], keys.TRAIN_LOSS) for c in contents]
        metrics = MetricRecord({keys.TRAIN_LOSS: float(np.mean(losses))}) if losses else None
        return ArrayRecord(mean), metrics


class _SeededNoise:
    """Mixin for Flower's wrappers: noise from ``(seed, "dp", round)``, denominator ``D``."""

    seed: int
    denominator: float
    server_round: int = 0
    noise_multiplier: float
    clipping_norm: float
    clips_on_server = False
    unmoved = 0  # replies equal to the global model this round (server-side clipping only)
    round_norm = 0.0  # the norm this round's updates were clipped to

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        self.server_round = server_round
        # Flower's adaptive wrappers move the norm before they add the noise; the noise must
        # scale with the norm the updates were clipped to (Andrew et al., Algorithm 1).
        self.round_norm = self.clipping_norm
        replies = list(replies)
        if self.clips_on_server:
            # Flower's clipping divides by the update's norm, so a reply equal to the global
            # model (a free-rider) would crash the round; it adds nothing to the sum anyway.
            current: ArrayRecord = self.current_arrays  # type: ignore[attr-defined]
            moved = [r for r in replies if r.has_error() or not _unmoved(r, current)]
            self.unmoved, replies = len(replies) - len(moved), moved
        result: tuple[ArrayRecord | None, MetricRecord | None] = super().aggregate_train(  # type: ignore[misc]
            server_round, replies
        )
        return result

    def _add_noise_to_aggregated_arrays(self, aggregated: ArrayRecord) -> ArrayRecord:
        std = compute_stdv(self.noise_multiplier, self.round_norm, self.denominator)  # type: ignore[arg-type]
        return noised(aggregated, std, generator(self.seed, "dp", self.server_round))

    def state(self) -> dict[str, Any]:
        return {}

    def restore(self, state: dict[str, Any]) -> None:
        """Fixed clipping keeps nothing between rounds."""


class _SeededAdaptive(_SeededNoise):
    """Andrew et al.'s clipped-count estimate and norm update (see the module docstring)."""

    clipped_count_stddev: float
    clip_norm_lr: float
    target_clipped_quantile: float  # 1 - target_quantile: Flower counts clipped updates

    def _noisy_fraction(self, count: int, total: int) -> float:
        total += self.unmoved  # left out of Flower's clipping: unclipped
        rng = generator(self.seed, "dp", self.server_round, "clipped-count")
        unclipped = (total / 2 - count + rng.normal(0.0, self.clipped_count_stddev)) / self.denominator + 0.5
        return 1.0 - unclipped

    def _geometric_update(self, clipped_fraction: float) -> None:
        # C <- C exp(-lr (unclipped - gamma)) = C exp(lr (clipped - (1 - gamma)))
        self.clipping_norm *= math.exp(self.clip_norm_lr * (clipped_fraction - self.target_clipped_quantile))

    def state(self) -> dict[str, Any]:
        return {"clipping_norm": self.clipping_norm}

    def restore(self, state: dict[str, Any]) -> None:
        self.clipping_norm = float(state["clipping_norm"])


class ServerFixed(_SeededNoise, DifferentialPrivacyServerSideFixedClipping):
    clips_on_server = True


class ClientFixed(_SeededNoise, DifferentialPrivacyClientSideFixedClipping):
    pass


class ServerAdaptive(_SeededAdaptive, DifferentialPrivacyServerSideAdaptiveClipping):
    clips_on_server = True


class ClientAdaptive(_SeededAdaptive, DifferentialPrivacyClientSideAdaptiveClipping):
    pass


class PrivateAggregation(_AroundAlgorithm):
    """The registry strategy, fed the noised mean of the clipped updates as its one reply."""

    def __init__(
        self,
        algorithm: Strategy,
        mechanism: ServerFixed | ClientFixed | ServerAdaptive | ClientAdaptive,
        client_clipping: str | None,
    ) -> None:
        self.algorithm, self.mechanism, self.client_clipping = algorithm, mechanism, client_clipping

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        if self.client_clipping:  # which Flower mod the ClientApp runs (clients/privacy.py)
            config[keys.DP_CLIENT_CLIPPING] = self.client_clipping
        return self.mechanism.configure_train(server_round, arrays, config, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        private, metrics = self.mechanism.aggregate_train(server_round, replies)
        if private is None:  # Flower's wrapper skips a round with failed clients
            return None, None
        reply = Message(
            RecordDict({keys.ARRAYS: private, keys.METRICS: MetricRecord({keys.NUM_EXAMPLES: 1.0})}),
            dst_node_id=0,
            message_type=MessageType.TRAIN,
        )
        stepped, _ = self.algorithm.aggregate_train(server_round, [reply])
        return stepped, metrics

    def state(self) -> dict[str, Any]:
        """What the mechanism carries from round to round (adaptive clipping: the norm)."""
        return self.mechanism.state()

    def restore(self, state: dict[str, Any]) -> None:
        self.mechanism.restore(state)


def wrap_central(scenario: Scenario, algorithm: Strategy, population: int) -> PrivateAggregation:
    """``algorithm`` behind the scenario's central DP mechanism, for ``population`` clients."""
    privacy = scenario.privacy
    assert privacy is not None and privacy.mode == "central"
    denominator = scenario.expected_cohort(population)
    mean = MeanOfUpdates(algorithm, denominator)
    mechanism = _mechanism(privacy, mean, round(denominator) or 1, scenario.count_stddev(population))
    mechanism.seed, mechanism.denominator = scenario.seed, denominator
    return PrivateAggregation(algorithm, mechanism, privacy.clipping if privacy.where == "client" else None)


def _mechanism(
    privacy: PrivacyConfig, mean: MeanOfUpdates, cohort: int, stddev: float
) -> ServerFixed | ClientFixed | ServerAdaptive | ClientAdaptive:
    if privacy.clipping == "fixed":
        fixed = ServerFixed if privacy.where == "server" else ClientFixed
        return fixed(mean, privacy.noise, _given(privacy.clipping_norm), cohort)
    adaptive = ServerAdaptive if privacy.where == "server" else ClientAdaptive
    return adaptive(
        mean,
        privacy.noise,
        cohort,
        initial_clipping_norm=_given(privacy.initial_clipping_norm),
        target_clipped_quantile=1.0 - _given(privacy.target_quantile),
        clip_norm_lr=_given(privacy.clip_lr),
        clipped_count_stddev=stddev,
    )


def _given(value: float | None) -> float:
    if value is None:  # PrivacyConfig fills its variant's defaults, so this is a bug
        raise ValueError("privacy parameter missing for its mode")
    return value
