"""Top-k updates with error feedback: an algorithm that keeps state on every client, written
against fedsim's public interface alone (``import fedsim``), as a user's plug-in.

Stich, Cordonnier and Jaggi 2018, "Sparsified SGD with Memory" (NeurIPS): an update compressed
to its k largest coordinates loses the rest, and the losses add up round after round; kept in a
memory and added back to the next update, they reach the model late instead of never, and top-k
converges as the uncompressed method does.  Client side, as in federated learning's use of it
(Sattler, Wiedemann, Müller and Samek 2019, "Robust and Communication-Efficient Federated
Learning from Non-IID Data", IEEE TNNLS): client ``i`` keeps the residual ``e_i`` (zero at
first) and, after its local steps from the global model ``x`` to ``y_i``,

    delta = (y_i - x) + e_i          this round's update, with what earlier rounds did not send
    sent  = top_k(delta)             each array's ``keep`` share of largest magnitudes, the rest 0
    e_i  <- delta - sent             what is left, for the client's next round

and sends the model ``x + sent``; the server averages those as FedAvg does.  ``keep = 1`` sends
every coordinate: FedAvg exactly.  fedsim counts arrays dense, so ``bytes_received`` shows no
saving; each client reports ``residual_norm``, ``||e_i||``, which every row of metrics.jsonl averages.

What fedsim does with what this file declares: it keeps ``e_i`` per client (on a SuperNode in its
state; in simulation in the server's store, through checkpoints and ``--resume``), hands it to
``finish`` each round, sends the model ``finish`` gives instead of the trained one (attacks and
local DP apply after), and screens the metric it adds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Annotated, Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

import fedsim

RESIDUAL = "residual"  # each client's e_i
KEEP = "topk-keep"  # the share kept, as the strategy tells its clients in every train config
NORM = "residual_norm"  # the metric each client adds


def top_k(values: np.ndarray, keep: float) -> np.ndarray:
    """``values`` with all but its ``ceil(keep * size)`` largest magnitudes set to zero."""
    k = math.ceil(keep * values.size)
    flat = values.ravel()
    sent = np.zeros_like(flat)
    largest = np.argpartition(np.abs(flat), -k)[-k:]
    sent[largest] = flat[largest]
    return sent.reshape(values.shape)


def finish(start: fedsim.ClientStart, y: dict[str, np.ndarray], steps: int) -> fedsim.Finished:
    """Send ``x + top_k(delta)``, keep ``delta - top_k(delta)``; buffers go as trained."""
    keep = float(start.server_config[KEEP])
    x, residual = start.global_weights, start.state[RESIDUAL]
    if keep >= 1:  # nothing dropped, nothing kept: the trained model itself
        zeros = {name: np.zeros_like(r) for name, r in residual.items()}
        return fedsim.Finished(state={RESIDUAL: zeros}, metrics={NORM: 0.0})
    sent, left = dict(y), {}
    for name, e in residual.items():
        delta = y[name] - x[name] + e
        update = top_k(delta, keep)
        sent[name], left[name] = x[name] + update, delta - update
    norm = math.sqrt(sum(float(np.sum(np.square(e, dtype=np.float64))) for e in left.values()))
    return fedsim.Finished(model=sent, state={RESIDUAL: left}, metrics={NORM: norm})


@fedsim.algorithm(finish=finish, state={RESIDUAL: fedsim.ArraysLike("parameters")}, metrics=(NORM,))
class TopK(FedAvg):
    """FedAvg whose clients send top-k updates with error feedback; ``keep``: the share of each
    array's coordinates a client sends (0.1: a tenth)."""

    def __init__(self, *, keep: Annotated[float, fedsim.Bounds(gt=0, le=1)] = 0.1, **fedavg: Any) -> None:
        super().__init__(**fedavg)
        self.keep = keep

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        config[KEEP] = self.keep
        return super().configure_train(server_round, arrays, config, grid)
