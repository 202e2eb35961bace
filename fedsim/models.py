"""Models, built deterministically from the scenario seed.

``cnn`` and ``mlp`` (the "2NN") are the MNIST models of McMahan et al. 2017,
"Communication-Efficient Learning of Deep Networks from Decentralized Data",
Section 3: 1,663,370 and 199,210 parameters on 28x28 inputs.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from fedsim.scenario import ModelConfig


def cnn(in_channels: int, num_classes: int) -> nn.Module:
    """5x5 conv 32 -> 2x2 pool -> 5x5 conv 64 -> 2x2 pool -> FC 512 ReLU -> classes."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.LazyLinear(512),
        nn.ReLU(),
        nn.Linear(512, num_classes),
    )


def mlp(in_features: int, num_classes: int) -> nn.Module:
    """Two hidden layers of 200 ReLU units."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_features, 200),
        nn.ReLU(),
        nn.Linear(200, 200),
        nn.ReLU(),
        nn.Linear(200, num_classes),
    )


def logreg(in_features: int, num_classes: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(in_features, num_classes))


def build_model(cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int, seed: int) -> nn.Module:
    """The same seed gives the same initial weights on every process."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if cfg.name == "cnn":
            model = cnn(input_shape[0], num_classes)
            model(torch.zeros(1, *input_shape))  # materialize the lazy FC layer's size
        elif cfg.name == "mlp":
            model = mlp(math.prod(input_shape), num_classes)
        else:
            model = logreg(math.prod(input_shape), num_classes)
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
