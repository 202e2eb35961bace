"""MOON: Li, He and Song 2021, "Model-Contrastive Federated Learning" (CVPR), Algorithm 1.

Each client keeps its previous local model ``w_i^{t-1}`` (at first, the first global model it
receives, as the authors' code does).  Its local loss adds a model-contrastive term to the
supervised one: with ``z``, ``z_glob`` and ``z_prev`` the representations of a batch under the model
being trained, the global model ``w^t`` and the previous local model,

    l_con = -log( exp(sim(z, z_glob) / tau) / (exp(sim(z, z_glob) / tau) + exp(sim(z, z_prev) / tau)) ),
    loss  = cross_entropy + mu * l_con,

``sim`` the cosine similarity, so a client's representation is pulled towards the global model's
and pushed from its own earlier one.  The server averages as FedAvg does.  The representation is
the input of the model's last ``nn.Linear`` layer (the paper's models end in a projection head and
an output layer; fedsim's built-in ones in their classifier).  The term reads the data, so it is an
objective of its own (strategies/algorithm.py) and each client trains on its own (no cohort);
``train_loss`` reports the cross-entropy alone.  :func:`contrastive_loss` is checked by hand in
tests/strategies/test_moon.py.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any

import torch
import torch.nn.functional as F
from flwr.app import ArrayRecord, ConfigRecord, Message
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg
from torch import nn

from fedsim.scenario.tables import Bounds
from strategies.algorithm import Arrays, ArraysLike, ClientStart, Finished, Local, Requires, algorithm

PREVIOUS = "previous"  # a client's kept previous local model
MU, TEMPERATURE = "moon-mu", "moon-temperature"  # the strategy's mu and tau, in every train config


def contrastive_loss(
    z: torch.Tensor, z_glob: torch.Tensor, z_prev: torch.Tensor, temperature: float
) -> torch.Tensor:
    """``l_con`` averaged over the batch: a two-way cross-entropy whose right answer is the global model."""
    positive = F.cosine_similarity(z, z_glob, dim=-1) / temperature
    negative = F.cosine_similarity(z, z_prev, dim=-1) / temperature
    logits = torch.stack([positive, negative], dim=1)
    return F.cross_entropy(logits, torch.zeros(len(z), dtype=torch.long, device=z.device))


def represented(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's logits for ``x``, and its representation: the input of its last linear layer."""
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    seen: list[torch.Tensor] = []
    hook = last.register_forward_pre_hook(lambda _, inputs: seen.append(inputs[0]))
    try:
        logits = model(x)
    finally:
        hook.remove()
    return logits, seen[-1].flatten(1)


@dataclass(frozen=True)
class Contrastive:
    """MOON's local objective, with this round's global and previous models (frozen copies)."""

    global_model: nn.Module
    previous: nn.Module
    mu: float
    temperature: float

    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits, z = represented(model, x)
        supervised = F.cross_entropy(logits, y)
        with torch.no_grad():
            z_glob = represented(self.global_model, x)[1]
            z_prev = represented(self.previous, x)[1]
        return supervised + self.mu * contrastive_loss(z, z_glob, z_prev, self.temperature), supervised


# --- The client half --------------------------------------------------------------------------


def _frozen(model: nn.Module, arrays: Arrays) -> nn.Module:
    copied = copy.deepcopy(model)
    copied.load_state_dict({k: torch.from_numpy(v) for k, v in arrays.items()})
    copied.eval()
    return copied.requires_grad_(False)


def begin(start: ClientStart) -> Local:
    """The contrastive objective between the model as received and the client's previous one."""
    if not any(isinstance(m, nn.Linear) for m in start.model.modules()):
        raise ValueError("MOON reads the representation at the model's last nn.Linear layer: it has none")
    objective = Contrastive(
        _frozen(start.model, start.global_weights),
        _frozen(start.model, start.state[PREVIOUS]),
        float(start.server_config[MU]),
        float(start.server_config[TEMPERATURE]),
    )
    return Local(objective=objective)


def finish(start: ClientStart, trained: Arrays, steps: int) -> Finished:
    """Keep the model just trained as the next round's previous model."""
    return Finished(state={PREVIOUS: trained})


# --- The server half --------------------------------------------------------------------------


@algorithm(
    begin=begin,
    finish=finish,
    state={PREVIOUS: ArraysLike("model", init="global")},
    requires=Requires(per_client=True),
    central_dp=True,  # the server averages the models, as FedAvg does
)
class Moon(FedAvg):
    """MOON on Flower's FedAvg, which sends ``mu`` and ``temperature`` to the clients.

    Defaults are the authors' code's: ``mu = 1`` (the paper tunes it in {0.1, 1, 5, 10}: 5 for
    CIFAR-10) and ``temperature = 0.5``.
    """

    def __init__(
        self,
        *,
        mu: Annotated[float, Bounds(ge=0)] = 1.0,
        temperature: Annotated[float, Bounds(gt=0)] = 0.5,
        **fedavg: Any,
    ) -> None:
        super().__init__(**fedavg)
        self.mu, self.temperature = mu, temperature

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        config[MU], config[TEMPERATURE] = self.mu, self.temperature
        return super().configure_train(server_round, arrays, config, grid)
