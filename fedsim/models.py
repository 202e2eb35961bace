"""Models, built deterministically from the scenario seed.

``cnn`` and ``mlp`` (the "2NN") are the MNIST models of McMahan et al. 2017,
"Communication-Efficient Learning of Deep Networks from Decentralized Data",
Section 3: 1,663,370 and 199,210 parameters on 28x28 inputs.  ``lstm`` is that
paper's Shakespeare character model (an 8-dimensional embedding, 2 LSTM layers of
256 units, a softmax over the characters), also LEAF's (Caldas et al. 2018);
``gru`` swaps the cells for GRUs.  Their sizes come from ``[model]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

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


class CharRNN(nn.Module):
    """Token ids (N, T) -> logits (N, vocab) for the token after the last one.

    Only the last position is scored: a sample is one window and its next character.
    """

    def __init__(self, cell: type[nn.LSTM | nn.GRU], vocab_size: int, cfg: ModelConfig) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, cfg.embedding_dim)
        self.rnn = cell(cfg.embedding_dim, cfg.hidden_size, cfg.num_layers, batch_first=True)
        self.head = nn.Linear(cfg.hidden_size, vocab_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs, _ = self.rnn(self.embedding(x))
        logits: torch.Tensor = self.head(outputs[:, -1])
        return logits


def _cnn(cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    model = cnn(input_shape[0], num_classes)
    model(torch.zeros(1, *input_shape))  # materialize the lazy FC layer's size
    return model


# name -> builder(config, input shape, number of classes); for text the classes are the vocabulary.
BUILDERS: dict[str, Callable[[ModelConfig, tuple[int, ...], int], nn.Module]] = {
    "cnn": _cnn,
    "mlp": lambda cfg, shape, classes: mlp(math.prod(shape), classes),
    "logreg": lambda cfg, shape, classes: logreg(math.prod(shape), classes),
    "lstm": lambda cfg, shape, classes: CharRNN(nn.LSTM, classes, cfg),
    "gru": lambda cfg, shape, classes: CharRNN(nn.GRU, classes, cfg),
}


def build_model(cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int, seed: int) -> nn.Module:
    """The same seed gives the same initial weights on every process."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return BUILDERS[cfg.name](cfg, input_shape, num_classes)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
