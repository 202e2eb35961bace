"""The built-in models: plug-ins like any user's, named in fedsim/scenario/plugins.py's REGISTRY.

A model builder is ``builder(input_shape, num_classes, **params)`` returning a
``torch.nn.Module`` that maps a batch of samples to one logit per class.

``cnn`` and ``mlp`` (the "2NN") are the MNIST models of McMahan et al. 2017,
"Communication-Efficient Learning of Deep Networks from Decentralized Data",
Section 3: 1,663,370 and 199,210 parameters on 28x28 inputs; the CNN's input shape
sets its channels and size, so it takes CIFAR-10's 3x32x32 images too.  ``lstm`` is
that paper's Shakespeare character model (an 8-dimensional embedding, 2 LSTM layers
of 256 units, a softmax over the characters), also LEAF's (Caldas et al. 2018);
``gru`` swaps the cells for GRUs.
"""

from __future__ import annotations

import math
from typing import Annotated

import torch
from torch import nn

from fedsim.scenario.tables import Bounds

Size = Annotated[int, Bounds(ge=1)]


def cnn(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """5x5 conv 32 -> 2x2 pool -> 5x5 conv 64 -> 2x2 pool -> FC 512 ReLU -> classes."""
    if len(input_shape) != 3:
        raise ValueError(f"'cnn' reads images (channels, height, width), not samples of shape {input_shape}")
    model = nn.Sequential(
        nn.Conv2d(input_shape[0], 32, 5, padding=2),
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
    model(torch.zeros(1, *input_shape))  # materialize the lazy FC layer's size
    return model


def mlp(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Two hidden layers of 200 ReLU units."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(math.prod(input_shape), 200),
        nn.ReLU(),
        nn.Linear(200, 200),
        nn.ReLU(),
        nn.Linear(200, num_classes),
    )


def logreg(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), num_classes))


class CharRNN(nn.Module):
    """Token ids (N, T) -> logits (N, vocab) for the token after the last one.

    Only the last position is scored: a sample is one window and its next character.
    """

    def __init__(
        self, cell: type[nn.LSTM | nn.GRU], vocab_size: int, embedding_dim: int, hidden_size: int, layers: int
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.rnn = cell(embedding_dim, hidden_size, layers, batch_first=True)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs, _ = self.rnn(self.embedding(x))
        logits: torch.Tensor = self.head(outputs[:, -1])
        return logits


def lstm(
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    embedding_dim: Size = 8,
    hidden_size: Size = 256,
    num_layers: Size = 2,
) -> nn.Module:
    """McMahan et al. 2017's Shakespeare model; ``num_classes`` is the vocabulary."""
    _check_windows("lstm", input_shape)
    return CharRNN(nn.LSTM, num_classes, embedding_dim, hidden_size, num_layers)


def gru(
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    embedding_dim: Size = 8,
    hidden_size: Size = 256,
    num_layers: Size = 2,
) -> nn.Module:
    _check_windows("gru", input_shape)
    return CharRNN(nn.GRU, num_classes, embedding_dim, hidden_size, num_layers)


def _check_windows(name: str, input_shape: tuple[int, ...]) -> None:
    if len(input_shape) != 1:
        raise ValueError(
            f"{name!r} reads windows of token ids (seq_len,), not samples of shape {input_shape}"
        )
