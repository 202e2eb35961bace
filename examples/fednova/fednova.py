"""FedNova: Wang, Liu, Liang, Joshi and Poor 2020, "Tackling the Objective Inconsistency
Problem in Heterogeneous Federated Optimization" (NeurIPS), as a fedsim plug-in pair.

When clients do different amounts of local work in a round (more data at the same epochs,
stragglers that stop early), FedAvg's average of their models leans towards the clients
that took more steps, and it converges to the optimum of a different objective than the
one it set out to minimize, weighted by ``p_i * tau_i`` instead of ``p_i``.  FedNova
(Section 4) normalizes each client's change by its amount of work before averaging:

- client ``i`` starts from the global model ``x``, takes ``tau_i`` local steps to ``y_i``
  and reports ``||a_i||_1``: ``tau_i`` for plain SGD, more with momentum (its steps'
  weights, :func:`momentum_norm`);
- the server forms the normalized updates ``d_i = (x - y_i) / ||a_i||_1``, the effective
  number of steps ``tau_eff = sum_i p_i ||a_i||_1`` (``p_i = n_i / n`` over the round's
  clients, the paper's choice of ``tau_eff``) and moves
  ``x <- x - eta_g * tau_eff * sum_i p_i d_i``.

With equal ``||a_i||_1`` this is FedAvg (``eta_g = 1``); the pure functions below are
checked by hand in tests/examples/test_fednova.py.

Two plug-ins: the local update :func:`local_sgd` (``client.update = "fednova:local_sgd"``)
and the strategy :class:`FedNova` (``strategy.name = "fednova:FedNova"``), a subclass of
Flower's FedAvg: its sampling, messages and metric averaging, FedNova's aggregation.
It returns ``tau_eff`` with its metrics, so every row of metrics.jsonl has it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any

import numpy as np
import torch
import torch.nn.functional as F
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg
from torch import nn

import fedsim

Arrays = dict[str, np.ndarray]

TAU = "tau"  # the local steps a client took, tau_i
A_NORM = "a_norm"  # ||a_i||_1: tau_i for plain SGD
TAU_EFF = "tau_eff"  # the strategy's own metric: sum_i p_i ||a_i||_1


# --- The client side -------------------------------------------------------------------------


def momentum_norm(steps: int, momentum: float) -> float:
    """``||a_i||_1`` of ``steps`` SGD steps with heavy-ball momentum ``rho`` (Appendix of the paper).

    Gradient ``j`` (of ``0 .. steps - 1``) reaches the model through every later step's
    momentum buffer, with weight ``(1 - rho^(steps - j)) / (1 - rho)``; summed:
    ``(steps - rho (1 - rho^steps) / (1 - rho)) / (1 - rho)``, which is ``steps`` at ``rho = 0``.
    """
    if momentum == 0.0:
        return float(steps)
    rho = momentum
    return (steps - rho * (1 - rho**steps) / (1 - rho)) / (1 - rho)


def local_sgd(model: nn.Module, data: fedsim.Split, ctx: fedsim.UpdateContext) -> dict[str, float]:
    """``ctx.config.local_epochs`` of minibatch SGD (this client's own: a straggler's are fewer),
    reporting the work done: ``tau`` (steps) and ``a_norm`` (``||a_i||_1``) beside ``train_loss``.

    A client's ``tau_i`` is its epochs times ``ceil(n_i / batch_size)``: clients of
    different sizes, and stragglers, differ in it, which is what FedNova corrects for.
    """
    cfg = ctx.config
    optimizer = torch.optim.SGD(
        model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )
    model.train()
    total, steps = 0.0, 0
    for _ in range(cfg.local_epochs):
        order = torch.randperm(len(data), generator=ctx.generator).to(data.x.device)
        for rows in order.split(cfg.batch_size):
            x, y = data.batch(rows)
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            total, steps = total + loss.item(), steps + 1
    return {"train_loss": total / steps, TAU: float(steps), A_NORM: momentum_norm(steps, cfg.momentum)}


# --- The server side -------------------------------------------------------------------------


def fednova_aggregate(
    x: Mapping[str, np.ndarray],
    ys: Sequence[Mapping[str, np.ndarray]],
    num_examples: Sequence[float],
    a_norms: Sequence[float],
    server_lr: float = 1.0,
) -> tuple[Arrays, float]:
    """FedNova's server step: ``x - server_lr * tau_eff * sum_i p_i (x - y_i) / a_i`` and ``tau_eff``.

    ``p_i = n_i / sum_j n_j`` from ``num_examples``; ``tau_eff = sum_i p_i a_i``.  Each array
    keeps its dtype (computed in float64).
    """
    if not ys or len(ys) != len(num_examples) or len(ys) != len(a_norms):
        raise ValueError(
            f"expected one n_i and a_i per client, got {len(ys)}, {len(num_examples)}, {len(a_norms)}"
        )
    if min(a_norms) <= 0 or min(num_examples) < 0 or sum(num_examples) <= 0:
        raise ValueError(f"expected a_i > 0 and n_i >= 0 with some n_i > 0, got {a_norms}, {num_examples}")
    total = float(sum(num_examples))
    p = [n / total for n in num_examples]
    tau_eff = sum(p_i * a_i for p_i, a_i in zip(p, a_norms, strict=True))
    new = {}
    for key, start in x.items():
        base = start.astype(np.float64)
        direction = sum(
            p_i * (base - y[key].astype(np.float64)) / a_i for p_i, y, a_i in zip(p, ys, a_norms, strict=True)
        )
        new[key] = (base - server_lr * tau_eff * direction).astype(start.dtype)
    return new, tau_eff


class FedNova(FedAvg):
    """FedNova (Wang et al. 2020) on Flower's FedAvg; ``server_learning_rate`` is the paper's
    ``eta_g`` (1: no server step size of its own).

    Needs clients that report their work: ``client.update = "fednova:local_sgd"``, or any
    update returning ``a_norm`` (or ``tau``) with its metrics.
    """

    def __init__(
        self,
        *,
        server_learning_rate: Annotated[float, fedsim.Bounds(gt=0)] = 1.0,
        context: fedsim.StrategyContext | None = None,
        **fedavg: Any,
    ) -> None:
        if context is not None and context.scenario.client.update == "sgd":
            raise fedsim.ScenarioError(
                "client.update",
                "FedNova needs each client's step count, which the built-in 'sgd' does not report; "
                "use 'fednova:local_sgd'",
            )
        super().__init__(**fedavg)
        self.server_learning_rate = server_learning_rate
        self.current: Arrays = {}  # x: the global model this round's clients start from

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self.current = {k: a.numpy() for k, a in arrays.items()}
        return super().configure_train(server_round, arrays, config, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        averaged, metrics = super().aggregate_train(server_round, replies)  # checks them; averages metrics
        valid = [m.content for m in replies if not m.has_error()]
        if averaged is None or not valid:
            return averaged, metrics
        ys = [{k: a.numpy() for k, a in c.array_records[self.arrayrecord_key].items()} for c in valid]
        numbers = [_metrics(c) for c in valid]
        weights = [float(m[self.weighted_by_key]) for m in numbers]  # type: ignore[arg-type]
        new, tau_eff = fednova_aggregate(
            self.current, ys, weights, [_a_norm(m) for m in numbers], self.server_learning_rate
        )
        metrics = MetricRecord() if metrics is None else metrics
        metrics[TAU_EFF] = tau_eff
        return ArrayRecord({k: Array(np.ascontiguousarray(v)) for k, v in new.items()}), metrics


def _metrics(content: RecordDict) -> MetricRecord:
    """A reply's one MetricRecord (FedAvg's checks made sure there is one)."""
    return next(iter(content.metric_records.values()))


def _a_norm(metrics: MetricRecord) -> float:
    for key in (A_NORM, TAU):
        if key in metrics:
            return float(metrics[key])  # type: ignore[arg-type]
    raise ValueError(
        f"a client replied without {A_NORM!r} or {TAU!r}: FedNova needs each client's local work "
        "(client.update = 'fednova:local_sgd')"
    )
