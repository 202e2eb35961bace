"""Compressing what travels between server and clients: pure codecs on named NumPy arrays.

Three codecs, applied to each floating-point array on its own (integer buffers, e.g. a batch
norm's counter, travel as they are):

- ``fp16``: the array as float16 (half the bytes of float32).
- ``int8``: per-tensor scale ``s = max|x| / 127`` (float32) and ``q = floor(x / s + u)``,
  ``u ~ U[0, 1)``: stochastic rounding, so ``E[q s] = x`` (unbiased), as in QSGD (Alistarh et
  al. 2017, "QSGD: Communication-Efficient SGD via Gradient Quantization and Encoding") and
  Konečný et al. 2016 ("Federated Learning: Strategies for Improving Communication
  Efficiency"); a quarter of float32's bytes.
- ``topk``: the ``k = max(1, ceil(fraction n))`` entries of largest magnitude (ties: the lower
  flat index first), as int32 flat indices and float32 values; the rest read as zeros.  Biased
  alone: with error feedback (:func:`with_feedback`) the client adds what it left out last
  time before compressing again, so every coordinate is eventually sent (Stich, Cordonnier,
  Jaggi 2018, "Sparsified SGD with Memory"; Karimireddy et al. 2019, "Error Feedback Fixes
  SignSGD and other Gradient Compression Schemes").

Encoded names (an ArrayRecord's keys; a model's state-dict names hold no ':'):

- ``<name>``: the payload (float16; int8 ``q``; topk's float32 values), or an integer array as is
- ``<name>:scale``: int8's ``s``, float32 of shape (1,)
- ``<name>:index``: topk's int32 flat indices, ascending

So the bytes a message's ArrayRecord counts (Flower's ``count_bytes``) are the encoded ones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

import numpy as np

Arrays = dict[str, np.ndarray]
Codec = Literal["none", "fp16", "int8", "topk"]
Like = Mapping[str, tuple[tuple[int, ...], np.dtype]]  # each array's shape and dtype, by name
SCALE = ":scale"
INDEX = ":index"


def floating(dtype: np.dtype) -> bool:
    return np.dtype(dtype).kind == "f"


def like(arrays: Mapping[str, np.ndarray]) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """What :func:`decode` needs of the original arrays: their shapes and dtypes."""
    return {name: (tuple(a.shape), a.dtype) for name, a in arrays.items()}


def topk_count(n: int, fraction: float) -> int:
    """Entries topk keeps of ``n``: ``max(1, ceil(fraction n))``, at most ``n``."""
    return min(n, max(1, math.ceil(fraction * n)))


def int8(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.float32]:
    """``(q, s)``: int8 ``q`` with ``q s`` an unbiased estimate of ``x``; all zeros if ``x`` is."""
    scale = np.float32(np.max(np.abs(x)) / 127) if x.size else np.float32(0)
    if scale == 0:
        return np.zeros(x.shape, np.int8), scale
    q = np.floor(x.astype(np.float64) / np.float64(scale) + rng.random(x.shape))
    return np.clip(q, -127, 127).astype(np.int8), scale


def topk(x: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """``(indices, values)``: the flat int32 indices (ascending) and float32 values of the
    entries of largest magnitude.  A stable sort breaks ties by index, so runs repeat."""
    flat = x.ravel()
    k = topk_count(flat.size, fraction)
    kept = np.sort(np.argsort(-np.abs(flat), kind="stable")[:k])
    return kept.astype(np.int32), flat[kept].astype(np.float32)


def encode(
    arrays: Mapping[str, np.ndarray], codec: Codec, rng: np.random.Generator, fraction: float
) -> Arrays:
    """``arrays`` encoded by ``codec`` under the names of the module's docstring."""
    out: Arrays = {}
    for name, x in arrays.items():
        if SCALE in name or INDEX in name:
            raise ValueError(f"array name {name!r}: holds a suffix compression reserves")
        if codec == "none" or not floating(x.dtype):
            out[name] = x
        elif codec == "fp16":
            out[name] = x.astype(np.float16)
        elif codec == "int8":
            out[name], scale = int8(x, rng)
            out[name + SCALE] = np.array([scale], np.float32)
        else:
            out[name + INDEX], out[name] = topk(x, fraction)
    return out


def decode(encoded: Mapping[str, np.ndarray], codec: Codec, original: Like) -> Arrays:
    """The arrays ``encoded`` stands for, in the ``original`` shapes and dtypes (by name, in its
    order).  Raises ValueError if ``encoded`` is not what ``codec`` makes of such arrays (a
    misbehaving client's reply: the server's screening then drops it)."""
    expected = {name: None for name in original}
    if codec in ("int8", "topk"):
        suffix = SCALE if codec == "int8" else INDEX
        expected.update({n + suffix: None for n, (_, dtype) in original.items() if floating(dtype)})
    if set(encoded) != set(expected):
        raise ValueError(f"encoded arrays {sorted(encoded)[:4]}... are not {codec}'s of the model")
    return {
        name: _decode_one(encoded, name, codec, shape, dtype) for name, (shape, dtype) in original.items()
    }


def _decode_one(
    encoded: Mapping[str, np.ndarray], name: str, codec: Codec, shape: tuple[int, ...], dtype: np.dtype
) -> np.ndarray:
    payload = encoded[name]
    if codec == "none" or not floating(dtype):
        return payload
    if codec == "fp16":
        _expect(name, payload, np.float16, shape)
        return payload.astype(dtype)
    if codec == "int8":
        _expect(name, payload, np.int8, shape)
        scale = encoded[name + SCALE]
        _expect(name + SCALE, scale, np.float32, (1,))
        values: np.ndarray = payload.astype(np.float32) * scale  # scale: shape (1,), broadcast
        return values.astype(dtype)
    index = encoded[name + INDEX]
    n = math.prod(shape)
    _expect(name, payload, np.float32, (payload.size,))
    _expect(name + INDEX, index, np.int32, payload.shape)
    if not 0 < index.size <= n or index.min() < 0 or index.max() >= n or np.unique(index).size != index.size:
        raise ValueError(f"{name + INDEX}: not distinct flat indices into {n} entries")
    out = np.zeros(n, dtype)
    out[index] = payload
    decoded: np.ndarray = out.reshape(shape)
    return decoded


def _expect(name: str, array: np.ndarray, dtype: type, shape: tuple[int, ...]) -> None:
    if array.dtype != dtype or array.shape != tuple(shape) or array.ndim != len(shape):
        raise ValueError(f"{name}: {array.dtype}{list(array.shape)}, expected {np.dtype(dtype)}{list(shape)}")


def with_feedback(
    update: Mapping[str, np.ndarray],
    residual: Mapping[str, np.ndarray],
    codec: Codec,
    rng: np.random.Generator,
    fraction: float,
) -> tuple[Arrays, Arrays]:
    """``(encoded, residual')``: ``update + residual`` encoded, and what the encoding left out
    of it, ``(update + residual) - decoded``, for the next round (error feedback)."""
    corrected = {n: u + residual[n] if n in residual else u for n, u in update.items()}
    encoded = encode(corrected, codec, rng, fraction)
    decoded = decode(encoded, codec, like(corrected))
    left = {n: corrected[n] - decoded[n] for n in residual}
    return encoded, left


def update_of(received: Mapping[str, np.ndarray], trained: Mapping[str, np.ndarray]) -> Arrays:
    """What a client sends: ``trained - received`` for floating arrays, integer ones as trained."""
    return {n: y - received[n] if floating(y.dtype) else y for n, y in trained.items()}


def model_of(received: Mapping[str, np.ndarray], update: Mapping[str, np.ndarray]) -> Arrays:
    """The trained model an update stands for: ``received + update`` (integer arrays: the update's)."""
    return {
        n: (received[n] + d).astype(received[n].dtype) if floating(received[n].dtype) else d
        for n, d in update.items()
    }


def residual_first(model: Mapping[str, np.ndarray]) -> Arrays:
    """Error feedback's first residual: zeros, one per floating array of the model."""
    return {n: np.zeros_like(a) for n, a in model.items() if floating(a.dtype)}
