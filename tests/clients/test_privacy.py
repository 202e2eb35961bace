"""The client's side of DP: Flower's clipping mods as the train handler runs them, local DP's
clip-and-noise, and the reply screening that expects adaptive clipping's norm bit."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MessageType, MetricRecord, RecordDict

from clients import privacy
from fedsim import protocol as keys
from fedsim.scenario.seeding import generator
from fedsim.sim.replies import expected_metrics, screen_train

pytestmark = pytest.mark.usefixtures("task_identity")

X = ArrayRecord({"a": Array(np.zeros(3, dtype=np.float32)), "b": Array(np.zeros(2, dtype=np.float32))})


def request(clipping: str | None, norm: float = 1.0) -> Message:
    config = ConfigRecord({keys.SERVER_ROUND: 1})
    if clipping is not None:
        config[keys.DP_CLIENT_CLIPPING] = clipping
        config[keys.CLIPPING_NORM] = norm
    return Message(
        RecordDict({keys.ARRAYS: X, keys.CONFIG: config}), dst_node_id=1, message_type=MessageType.TRAIN
    )


def trained(value: float):  # type: ignore[no-untyped-def]
    """A stand-in train handler: replies with every weight at ``value``."""

    def handler(msg: Message, context: Context) -> Message:
        y = ArrayRecord({k: Array(np.full(a.shape, value, dtype=np.float32)) for k, a in X.items()})
        metrics = MetricRecord({keys.NUM_EXAMPLES: 5.0, keys.TRAIN_LOSS: 0.5})
        return Message(RecordDict({keys.ARRAYS: y, keys.METRICS: metrics}), reply_to=msg)

    return handler


def context() -> Context:
    return Context(run_id=1, node_id=1, node_config={}, state=RecordDict(), run_config={})


def update_norm(reply: Message) -> float:
    arrays = reply.content.array_records[keys.ARRAYS]
    return float(np.sqrt(sum(np.sum(arrays[k].numpy() ** 2) for k in arrays)))


@pytest.mark.parametrize("clipping", ["fixed", "adaptive"])
def test_flowers_clipping_mod_bounds_the_update_the_client_sends(clipping: str) -> None:
    reply = privacy.clipping_mod(request(clipping, norm=0.7), context(), trained(3.0))
    assert update_norm(reply) == pytest.approx(0.7, rel=1e-6)  # from 3 * sqrt(5) = 6.7
    small = privacy.clipping_mod(request(clipping, norm=10.0), context(), trained(0.1))
    assert update_norm(small) == pytest.approx(0.1 * np.sqrt(5), rel=1e-6)  # within the bound: unchanged
    metrics = reply.content.metric_records[keys.METRICS]
    assert (keys.NORM_BIT in metrics) == (clipping == "adaptive")
    if clipping == "adaptive":
        assert metrics[keys.NORM_BIT] == 1 and small.content.metric_records[keys.METRICS][keys.NORM_BIT] == 0


def test_without_a_clipping_request_the_mod_passes_the_reply_through() -> None:
    assert update_norm(privacy.clipping_mod(request(None), context(), trained(3.0))) == pytest.approx(
        3 * np.sqrt(5)
    )


def test_screening_expects_the_norm_bit_exactly_when_adaptive_clipping_asks_for_it() -> None:
    asked = request("adaptive")
    reply = privacy.clipping_mod(asked, context(), trained(3.0))
    assert screen_train([reply], X, metrics=expected_metrics(asked)).accepted == [reply]
    rejected = screen_train([reply], X).rejected  # a reply without the request: an unknown key
    assert len(rejected) == 1 and keys.NORM_BIT in rejected[0]
    plain = trained(3.0)(request("fixed"), context())
    assert screen_train([plain], X, metrics=expected_metrics(asked)).rejected  # the bit is missing


def test_clip_scales_the_whole_update_to_the_norm() -> None:
    update = {"a": np.array([3.0, 0.0], dtype=np.float32), "b": np.array([4.0], dtype=np.float32)}
    clipped = privacy.clip(update, 1.0)
    assert clipped["a"].tolist() == pytest.approx([0.6, 0.0]) and clipped["b"].tolist() == pytest.approx(
        [0.8]
    )
    assert clipped["a"].dtype == np.float32
    assert privacy.clip(update, 10.0)["b"].tolist() == [4.0]  # norm 5 <= 10: as is
    zero = {"a": np.zeros(2, dtype=np.float32)}
    assert privacy.clip(zero, 1.0)["a"].tolist() == [0.0, 0.0]  # no division by a zero norm


def test_local_release_adds_noise_of_std_z_c_to_the_clipped_update() -> None:
    n = 200_000
    x = {"w": np.zeros(n, dtype=np.float32)}
    y = {"w": np.full(n, 10.0, dtype=np.float32)}  # update norm 10 * sqrt(n): clipped to 2
    sent = privacy.local_release(x, y, clipping_norm=2.0, noise_multiplier=0.5, rng=generator(0, "dp", 1, 7))
    noise = sent["w"].astype(np.float64) - 2.0 / np.sqrt(n)
    assert abs(noise.std() - 1.0) < 4 * 1.0 / np.sqrt(2 * n)  # std z * C = 1
    assert abs(noise.mean()) < 4 / np.sqrt(n)
    again = privacy.local_release(x, y, 2.0, 0.5, generator(0, "dp", 1, 7))
    assert np.array_equal(sent["w"], again["w"])  # from (seed, "dp", round, partition)
    other = privacy.local_release(x, y, 2.0, 0.5, generator(0, "dp", 1, 8))
    assert not np.array_equal(sent["w"], other["w"])
