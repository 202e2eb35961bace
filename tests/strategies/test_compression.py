"""The codecs of [compression], with numbers worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from fedsim import protocol as keys
from fedsim.models.build import build_model
from fedsim.scenario.sections import ModelConfig
from strategies.compression import decode, encode, int8, like, model_of, topk, update_of, with_feedback


class Draws:
    """A stand-in generator whose uniform draws are given."""

    def __init__(self, u: list[float]) -> None:
        self.u = np.array(u)

    def random(self, shape: tuple[int, ...]) -> np.ndarray:
        return self.u.reshape(shape)


def test_int8_rounds_stochastically_on_a_grid_of_max_over_127() -> None:
    x = np.array([1.27, -0.635, 0.0, 0.3175], np.float32)
    # scale 1.27 / 127 = 0.01; x / scale = 127, -63.5, 0, 31.75; + u = 127.9, -63.1, 0.99, 32.05
    q, scale = int8(x, Draws([0.9, 0.4, 0.99, 0.3]))  # type: ignore[arg-type]
    assert scale == pytest.approx(0.01) and scale.dtype == np.float32
    assert q.tolist() == [127, -64, 0, 32] and q.dtype == np.int8
    decoded = decode({"w": q, "w:scale": np.array([scale])}, "int8", like({"w": x}))["w"]
    assert decoded.tolist() == pytest.approx([1.27, -0.64, 0.0, 0.32]) and decoded.dtype == np.float32


def test_int8_of_zeros_is_zeros_and_its_rounding_is_unbiased() -> None:
    q, scale = int8(np.zeros(3, np.float32), np.random.default_rng(0))
    assert scale == 0 and q.tolist() == [0, 0, 0]
    x = np.array([1.27, -0.635], np.float32)  # -63.5 steps: -64 or -63, each half the time
    rng = np.random.default_rng(0)
    mean = np.mean([int8(x, rng)[0][1] for _ in range(4000)])
    assert mean == pytest.approx(-63.5, abs=0.05)


def test_topk_of_3_m5_1_4_at_half_keeps_m5_and_4() -> None:
    indices, values = topk(np.array([3.0, -5.0, 1.0, 4.0], np.float32), 0.5)
    assert indices.tolist() == [1, 3] and values.tolist() == [-5.0, 4.0]
    assert indices.dtype == np.int32 and values.dtype == np.float32
    decoded = decode({"w": values, "w:index": indices}, "topk", {"w": ((2, 2), np.dtype(np.float32))})
    assert decoded["w"].tolist() == [[0.0, -5.0], [0.0, 4.0]]


def test_topk_breaks_ties_by_index_and_keeps_at_least_one() -> None:
    assert topk(np.array([2.0, -2.0, 2.0, 1.0]), 0.5)[0].tolist() == [0, 1]
    assert topk(np.array([1.0, 3.0, 2.0]), 0.01)[0].tolist() == [1]  # ceil(0.03) = 1


def test_error_feedback_sends_what_was_left_out_later() -> None:
    update = {"w": np.array([3.0, -5.0, 1.0, 4.0], np.float32)}
    rng = np.random.default_rng(0)  # topk draws nothing
    sent, residual = with_feedback(update, {"w": np.zeros(4, np.float32)}, "topk", rng, 0.5)
    assert decode(sent, "topk", like(update))["w"].tolist() == [0.0, -5.0, 0.0, 4.0]
    assert residual["w"].tolist() == [3.0, 0.0, 1.0, 0.0]
    # Round two: 1 + residual = [4, 1, 2, 1]; its top two are 4 and 2.
    sent, residual = with_feedback({"w": np.ones(4, np.float32)}, residual, "topk", rng, 0.5)
    assert decode(sent, "topk", like(update))["w"].tolist() == [4.0, 0.0, 2.0, 0.0]
    assert residual["w"].tolist() == [0.0, 1.0, 0.0, 1.0]


def test_an_update_is_floating_differences_and_integer_buffers_as_trained() -> None:
    x = {"w": np.array([1.0, 2.0], np.float32), "n": np.array([3], np.int64)}
    y = {"w": np.array([1.5, 1.0], np.float32), "n": np.array([5], np.int64)}
    update = update_of(x, y)
    assert update["w"].tolist() == [0.5, -1.0] and update["n"].tolist() == [5]
    encoded = encode(update, "fp16", np.random.default_rng(0), 0.0)
    assert encoded["w"].dtype == np.float16 and encoded["n"].dtype == np.int64
    back = model_of(x, decode(encoded, "fp16", like(x)))
    assert back["w"].tolist() == [1.5, 1.0] and back["n"].tolist() == [5]


def test_decode_refuses_what_the_codec_does_not_make() -> None:
    original = {"w": ((4,), np.dtype(np.float32))}
    with pytest.raises(ValueError, match="not int8's"):
        decode({"w": np.zeros(4, np.int8)}, "int8", original)  # no scale
    with pytest.raises(ValueError, match="expected float16"):
        decode({"w": np.zeros(4, np.float32)}, "fp16", original)
    bad = {"w": np.ones(2, np.float32), "w:index": np.array([1, 7], np.int32)}
    with pytest.raises(ValueError, match="flat indices"):
        decode(bad, "topk", original)


# Flower's count_bytes: per array, its .npy (a 128-byte header + n * itemsize) and len(key).
def test_encoded_records_count_their_encoded_bytes() -> None:
    arrays = {"w": np.ones((3, 4), np.float32), "b": np.ones(4, np.float32)}
    rng = np.random.default_rng(0)
    assert keys.to_record(arrays).count_bytes() == (128 + 48 + 1) + (128 + 16 + 1)
    int8_bytes = (128 + 12 + 1) + (128 + 4 + 7) + (128 + 4 + 1) + (128 + 4 + 7)  # w, w:scale, b, b:scale
    assert keys.to_record(encode(arrays, "int8", rng, 0.0)).count_bytes() == int8_bytes
    assert keys.to_record(encode(arrays, "fp16", rng, 0.0)).count_bytes() == (128 + 24 + 1) + (128 + 8 + 1)
    # topk at 0.25: w keeps 3 of 12 (values 128 + 12 + 1, w:index 128 + 12 + 7), b 1 of 4.
    topk_bytes = (128 + 12 + 1) + (128 + 12 + 7) + (128 + 4 + 1) + (128 + 4 + 7)
    assert keys.to_record(encode(arrays, "topk", rng, 0.25)).count_bytes() == topk_bytes


def test_int8_sends_the_2nn_in_about_a_quarter_of_its_float32_bytes() -> None:
    model = build_model(ModelConfig("mlp"), (1, 28, 28), 10, seed=0)
    arrays = {k: v.numpy() for k, v in model.state_dict().items()}
    assert [a.shape for a in arrays.values()] == [(200, 784), (200,), (200, 200), (200,), (10, 200), (10,)]
    # 199 210 entries; names "1.weight", "1.bias", ...: 8 + 6 characters per layer, 3 layers.
    fp32 = 6 * 128 + 4 * 199_210 + 42
    int8_bytes = 6 * 128 + 199_210 + 42 + 6 * (128 + 4) + (42 + 6 * len(":scale"))
    assert keys.to_record(arrays).count_bytes() == fp32 == 797_650
    assert keys.to_record(encode(arrays, "int8", np.random.default_rng(0), 0.0)).count_bytes() == int8_bytes
    assert int8_bytes / fp32 == pytest.approx(1 / 4, abs=0.002)  # 0.2519
