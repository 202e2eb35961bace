"""The client's part of differential privacy: clipping for central DP, clip-and-noise for local DP.

Central DP with ``where = "client"``: the server's DP wrapper (strategies/privacy.py)
asks for clipping in the train request; :func:`clipping_mod` runs Flower's own
``fixedclipping_mod`` or ``adaptiveclipping_mod`` on the train handler, which clip the
reply's update to the norm the server sent (adaptive: and report whether they clipped).

Local DP (``mode = "local"``): before a client's model leaves it, :func:`local_release`
clips the update ``y - x`` to L2 norm ``C`` and adds ``N(0, (z C)^2)`` per coordinate,
from the stream ``(seed, "dp", round, partition id)``, so every run repeats.  (Flower's
``LocalDpMod`` draws from NumPy's global generator and calibrates to a per-round
epsilon with the classical Gaussian-mechanism bound, valid for epsilon < 1 only; here
the noise is a multiplier and strategies/accounting.py composes the rounds.)
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from flwr.app import Context, Message
from flwr.clientapp.mod import adaptiveclipping_mod, fixedclipping_mod
from flwr.clientapp.typing import ClientAppCallable

from fedsim import protocol as keys

Arrays = dict[str, np.ndarray]


def clipping_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Flower's client-side clipping mod that the request names, if it names one."""
    config = msg.content.config_records.get(keys.CONFIG)
    clipping = config.get(keys.DP_CLIENT_CLIPPING) if config is not None else None
    if clipping == "fixed":
        return fixedclipping_mod(msg, context, call_next)
    if clipping == "adaptive":
        return adaptiveclipping_mod(msg, context, call_next)
    return call_next(msg, context)


def clip(update: Mapping[str, np.ndarray], norm: float) -> Arrays:
    """``update`` scaled to L2 norm at most ``norm`` over all its arrays together."""
    total = float(np.sqrt(sum(float(np.sum(np.square(d, dtype=np.float64))) for d in update.values())))
    scale = min(1.0, norm / total) if total > 0 else 1.0
    return {k: (d * scale).astype(d.dtype) for k, d in update.items()}


def local_release(
    global_model: Mapping[str, np.ndarray],
    local_model: Mapping[str, np.ndarray],
    clipping_norm: float,
    noise_multiplier: float,
    rng: np.random.Generator,
) -> Arrays:
    """``x + clip(y - x) + N(0, (z C)^2)``: the model a client sends under local DP."""
    update = clip({k: local_model[k] - global_model[k] for k in local_model}, clipping_norm)
    std = noise_multiplier * clipping_norm
    return {
        k: (global_model[k] + d + rng.normal(0.0, std, d.shape)).astype(d.dtype) for k, d in update.items()
    }
