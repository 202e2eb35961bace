"""``python -m benchmarks.proximal``: FedProx's local step with the proximal gradient in place vs by autograd.

FedProx's Synthetic(1,1) setting (Li et al. 2020): logistic regression on 60 features, E = 20,
B = 10, on the first 10 devices, one thread, best of 3.  Three timings of the same steps: plain SGD
(``mu = 0``), ``clients.training.train`` with a ``Proximal`` term of ``mu = 1`` (the gradient
``mu * (w - w_global)`` added in place, strategies/algorithm.py), and the same step with the term
``mu/2 ||w - w_global||^2`` differentiated by autograd, as fedsim did before.  Prints the ratios
to plain SGD.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from clients import training
from fedsim.data import Split, find_federated
from fedsim.models.build import build_model
from fedsim.scenario.files import parse_scenario
from fedsim.scenario.sections import ClientConfig
from strategies.algorithm import Proximal

SCENARIO = """
[data]
dataset = "synthetic"
partition = "natural"
params = { alpha = 1.0, beta = 1.0 }
[model]
name = "logreg"
[client]
local_epochs = 20
batch_size = 10
lr = 0.01
"""
Train = Callable[[nn.Module, Split, ClientConfig, float, torch.Generator], object]


def by_autograd(
    model: nn.Module, split: Split, cfg: ClientConfig, mu: float, generator: torch.Generator
) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    anchor = [p.detach().clone() for p in model.parameters()]
    for _ in range(cfg.local_epochs):
        for batch in torch.randperm(len(split), generator=generator).split(cfg.batch_size):
            optimizer.zero_grad()
            x, y = split.batch(batch)
            squares = torch.stack(
                [(p - a).pow(2).sum() for p, a in zip(model.parameters(), anchor, strict=True)]
            )
            (F.cross_entropy(model(x), y) + 0.5 * mu * squares.sum()).backward()
            optimizer.step()


def in_place(
    model: nn.Module, split: Split, cfg: ClientConfig, mu: float, generator: torch.Generator
) -> None:
    anchor = {n: p.detach().clone() for n, p in model.named_parameters()}
    training.train(model, split, cfg, generator, (Proximal(mu, anchor),) if mu else ())


def main() -> None:
    torch.set_num_threads(1)
    scenario = parse_scenario(SCENARIO)
    data = find_federated(scenario.data, scenario.seed)[0]
    model = build_model(scenario.model, data.input_shape, data.num_classes, scenario.seed)
    clients = [data.client(k) for k in range(10)]

    def best(train: Train, mu: float) -> float:
        times = []
        for _ in range(3):
            started = time.perf_counter()
            for split in clients:
                train(model, split, scenario.client, mu, torch.Generator().manual_seed(0))
            times.append(time.perf_counter() - started)
        return min(times)

    plain, added, autograd = best(in_place, 0.0), best(in_place, 1.0), best(by_autograd, 1.0)
    print(
        f"mu = 0: {plain:.2f} s; mu = 1 in place: {added:.2f} s ({added / plain:.2f}x); "
        f"mu = 1 by autograd: {autograd:.2f} s ({autograd / plain:.2f}x)"
    )


if __name__ == "__main__":
    main()
