"""Central DP around registry strategies: clipping bounds, the noise's standard deviation, seeding,
the fixed-denominator mean, adaptive clipping's direction, the server step on the private mean."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp.strategy import DifferentialPrivacyServerSideAdaptiveClipping, FedAdam, FedAvg, Strategy

from fedsim import protocol as keys
from fedsim.scenario.files import parse_scenario
from fedsim.scenario.sections import Scenario
from fedsim.scenario.seeding import generator
from strategies.privacy import MeanOfUpdates, PrivateAggregation, ServerAdaptive, noised, wrap_central
from strategies.registry import TAKE_ALL as _TAKE_ALL

DIM = 8


def scenario(*overrides: str) -> Scenario:
    base = ("data.num_clients=20", "strategy.fraction_train=0.2", 'privacy.mode="central"', "seed=3")
    return parse_scenario('[data]\ndataset = "synthetic"\n[model]\nname = "mlp"', (*base, *overrides))


def model(value: float = 0.0, dim: int = DIM) -> ArrayRecord:
    return ArrayRecord({"w": Array(np.full(dim, value, dtype=np.float32))})


def reply(node: int, update: np.ndarray, examples: float = 10.0, **metrics: float) -> Message:
    content = RecordDict(
        {
            keys.ARRAYS: ArrayRecord({"w": Array(update.astype(np.float32))}),
            keys.METRICS: MetricRecord({keys.NUM_EXAMPLES: examples, keys.TRAIN_LOSS: 1.0, **metrics}),
        }
    )
    message = Message(content, dst_node_id=0, message_type="train")
    message.metadata.__dict__["_src_node_id"] = node
    return message


def grid(nodes: int = 4) -> Any:
    return SimpleNamespace(get_node_ids=lambda: list(range(1, nodes + 1)))


def run_round(strategy: Strategy, x: ArrayRecord, updates: list[np.ndarray], server_round: int = 1) -> Any:
    strategy.configure_train(server_round, x, ConfigRecord(), grid(len(updates) or 1))
    replies = [reply(i + 1, x["w"].numpy() + u) for i, u in enumerate(updates)]
    arrays, metrics = strategy.aggregate_train(server_round, replies)
    return arrays, metrics, replies


def test_server_side_clipping_bounds_every_update_and_the_mean_divides_by_the_cohort() -> None:
    private = wrap_central(
        scenario("privacy.clipping_norm=1.0", "privacy.noise_multiplier=1e-9"), FedAvg(**_TAKE_ALL), 20
    )
    big, small = np.full(DIM, 5.0), np.full(DIM, 0.1)  # norms 14.1 and 0.28
    arrays, _, replies = run_round(private, model(), [big, small])
    norms = [np.linalg.norm(r.content[keys.ARRAYS]["w"].numpy()) for r in replies]
    assert norms[0] == pytest.approx(1.0, rel=1e-6) and norms[1] == pytest.approx(
        np.linalg.norm(small), rel=1e-6
    )
    # (clip(big) + small) / D, D = 0.2 * 20 = 4 sampled clients (not the 2 that replied), noise ~1e-9
    expected = (big / np.linalg.norm(big) + small) / 4
    assert arrays["w"].numpy() == pytest.approx(expected, abs=1e-6)


def test_every_client_weighs_the_same_whatever_its_examples() -> None:
    mean = MeanOfUpdates(FedAvg(**_TAKE_ALL), denominator=2)
    mean.configure_train(1, model(), ConfigRecord(), grid(2))
    arrays, metrics = mean.aggregate_train(1, [reply(1, np.ones(DIM), 1000.0), reply(2, -np.ones(DIM), 1.0)])
    assert arrays is not None and np.all(arrays["w"].numpy() == 0.0)
    assert metrics is not None and metrics[keys.TRAIN_LOSS] == 1.0


@pytest.mark.parametrize("where", ["server", "client"])
def test_noise_on_the_mean_has_std_z_c_over_the_cohort(where: str) -> None:
    """As pfl-research tests its mechanisms: a large sample with a fixed seed, zero updates."""
    cfg = scenario("privacy.clipping_norm=2.0", "privacy.noise_multiplier=1.5", f'privacy.where="{where}"')
    private = wrap_central(cfg, FedAvg(**_TAKE_ALL), 20)
    dim = 200_000
    arrays, _, _ = run_round(private, model(0.0, dim), [np.zeros(dim)] * 3)
    noise = arrays["w"].numpy().astype(np.float64)
    std = 1.5 * 2.0 / 4  # z * C / D, D = 4
    # The sample std of n normals is within 4 standard errors (std / sqrt(2n)) of the truth.
    assert abs(noise.std() - std) < 4 * std / np.sqrt(2 * dim)
    assert abs(noise.mean()) < 4 * std / np.sqrt(dim)


def test_the_noise_is_drawn_from_the_seed_and_round() -> None:
    def noise(cfg: Scenario, server_round: int) -> np.ndarray:
        arrays, _, _ = run_round(
            wrap_central(cfg, FedAvg(**_TAKE_ALL), 20), model(), [np.zeros(DIM)], server_round
        )
        return np.asarray(arrays["w"].numpy())

    first = noise(scenario(), 1)
    assert np.array_equal(first, noise(scenario(), 1))
    assert not np.array_equal(first, noise(scenario(), 2))
    assert not np.array_equal(first, noise(scenario("seed=4"), 1))
    std = 1.0 * 1.0 / 4
    assert np.array_equal(first, noised(model(), std, generator(3, "dp", 1))["w"].numpy())


def test_an_empty_poisson_round_releases_the_model_plus_noise() -> None:
    cfg = scenario('privacy.sampling="poisson"', "privacy.noise_multiplier=2.0")
    private = wrap_central(cfg, FedAvg(**_TAKE_ALL), 20)
    arrays, metrics, _ = run_round(private, model(1.0, 50_000), [])
    values = arrays["w"].numpy()
    assert metrics is None  # no client, no training loss
    assert values.mean() == pytest.approx(1.0, abs=0.01) and values.std() == pytest.approx(2.0 / 4, rel=0.02)


def test_a_server_optimizer_steps_on_the_private_mean() -> None:
    """FedAdam sees only the noised mean: DP as post-processing, before the algorithm's step."""
    cfg = scenario('strategy.name="fedadam"', "privacy.clipping_norm=0.5")
    private = wrap_central(cfg, FedAdam(**_TAKE_ALL), 20)
    x = model(1.0)
    update = np.linspace(-2, 2, DIM)
    got, _, _ = run_round(private, x, [update])
    clipped = update * min(1.0, 0.5 / np.linalg.norm(update))
    mean = ArrayRecord({"w": Array((x["w"].numpy() + clipped / 4).astype(np.float32))})
    private_mean = noised(mean, 1.0 * 0.5 / 4, generator(3, "dp", 1))
    reference = FedAdam(**_TAKE_ALL)
    reference.configure_train(1, x, ConfigRecord(), grid(1))
    pseudo = Message(
        RecordDict({keys.ARRAYS: private_mean, keys.METRICS: MetricRecord({keys.NUM_EXAMPLES: 1.0})}),
        dst_node_id=0,
        message_type="train",
    )
    expected, _ = reference.aggregate_train(1, [pseudo])
    assert expected is not None and got["w"].numpy() == pytest.approx(expected["w"].numpy(), abs=1e-6)


def adaptive_rounds(strategy: Strategy, rounds: int) -> list[float]:
    """Ten clients whose update norms are 1, 2, ..., 10: the median is 5.5."""
    norms = []
    for r in range(1, rounds + 1):
        run_round(strategy, model(), [np.full(DIM, k / np.sqrt(DIM)) for k in range(1, 11)], r)
        norms.append(float(strategy.clipping_norm))  # type: ignore[attr-defined]
    return norms


def test_adaptive_clipping_norm_moves_to_the_target_quantile() -> None:
    """Andrew et al. 2021, Algorithm 1: up while most updates are clipped, then around the median."""
    mean = MeanOfUpdates(FedAvg(**_TAKE_ALL), 10)
    strategy = ServerAdaptive(
        mean, 1e-3, 10, 0.1, target_clipped_quantile=0.5, clip_norm_lr=0.5, clipped_count_stddev=0.01
    )
    strategy.seed, strategy.denominator = 0, 10.0
    norms = adaptive_rounds(strategy, 60)
    assert norms[0] > 0.1 and norms[10] > norms[0]  # all clipped: grows
    assert 4.0 < float(np.mean(norms[-20:])) < 7.0


@pytest.mark.parametrize("where", ["server", "client"])
def test_adaptive_noise_scales_with_the_norm_the_round_clipped_to(where: str) -> None:
    """The norm moves within the round (up: all are clipped, and clip_lr is 2); the noise must not."""
    cfg = scenario(
        'privacy.clipping="adaptive"',
        f'privacy.where="{where}"',
        "privacy.initial_clipping_norm=0.5",
        "privacy.clip_lr=2.0",
        "privacy.noise_multiplier=0.5",
        "privacy.clipped_count_stddev=0.3",  # Flower needs z < 2 s
    )
    private = wrap_central(cfg, FedAvg(**_TAKE_ALL), 20)
    dim = 200_000
    x = model(0.0, dim)
    private.configure_train(1, x, ConfigRecord(), grid(4))
    updates = [np.eye(1, dim, 0)[0] for _ in range(4)]  # norm 1 > 0.5 on coordinate 0: all clipped
    replies = [
        reply(i + 1, u, **({keys.NORM_BIT: 1} if where == "client" else {})) for i, u in enumerate(updates)
    ]
    arrays, _ = private.aggregate_train(1, replies)
    assert private.mechanism.clipping_norm > 1.5 * 0.5
    noise = arrays["w"].numpy()[1:].astype(np.float64)  # coordinate 0 carries the mean
    update_noise = private.mechanism.noise_multiplier  # Flower's z for the update: (0.5^-2 - 0.6^-2)^-1/2
    assert update_noise == pytest.approx((0.5**-2 - 0.6**-2) ** -0.5)
    std = update_noise * 0.5 / 4
    assert abs(noise.std() - std) < 4 * std / np.sqrt(2 * dim)


def test_flowers_own_adaptive_update_moves_away_from_the_target() -> None:
    """Why strategies/privacy.py overrides it: Flower 1.42 shrinks the norm when everything is clipped."""
    strategy = DifferentialPrivacyServerSideAdaptiveClipping(
        MeanOfUpdates(FedAvg(**_TAKE_ALL), 10), 1e-3, 10, 0.1, 0.5, 0.5, clipped_count_stddev=0.01
    )
    assert adaptive_rounds(strategy, 5)[-1] < 0.1


def test_adaptive_clipping_norm_is_saved_and_restored() -> None:
    cfg = scenario('privacy.clipping="adaptive"', "privacy.clipped_count_stddev=1.0")
    private = wrap_central(cfg, FedAvg(**_TAKE_ALL), 20)
    assert isinstance(private, PrivateAggregation)
    run_round(private, model(), [np.full(DIM, 3.0)] * 4)
    state = private.state()
    assert state["clipping_norm"] != pytest.approx(0.1)
    fresh = wrap_central(cfg, FedAvg(**_TAKE_ALL), 20)
    fresh.restore(state)
    assert fresh.mechanism.clipping_norm == state["clipping_norm"]
    assert wrap_central(scenario(), FedAvg(**_TAKE_ALL), 20).state() == {}  # fixed clipping keeps nothing


def test_client_side_clipping_asks_the_clients_for_the_mod_and_norm() -> None:
    cfg = scenario(
        'privacy.where="client"', 'privacy.clipping="adaptive"', "privacy.clipped_count_stddev=1.0"
    )
    private = wrap_central(cfg, FedAvg(**_TAKE_ALL), 20)
    (message,) = private.configure_train(1, model(), ConfigRecord(), grid(1))
    config = message.content[keys.CONFIG]
    assert config[keys.DP_CLIENT_CLIPPING] == "adaptive" and config[keys.CLIPPING_NORM] == pytest.approx(0.1)
