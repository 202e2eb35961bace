"""The training loop's hooks, on a model small enough to follow by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from clients.training import train
from fedsim.data import Split
from fedsim.scenario.sections import ClientConfig


def test_correction_is_added_to_the_gradient_before_each_step() -> None:
    """Logits W x with W = 0 and x = 1: softmax (0.5, 0.5), label 0, so dL/dW = (-0.5, 0.5).

    With correction (0.1, 0.2) and lr 1, one step gives W = -(g + correction) = (0.4, -0.7).
    """
    model = nn.Linear(1, 2, bias=False)
    nn.init.zeros_(model.weight)
    data = Split(torch.ones(1, 1), torch.zeros(1, dtype=torch.int64))
    cfg = ClientConfig(local_epochs=1, batch_size=1, lr=1.0)
    correction = [torch.tensor([[0.1], [0.2]])]
    train(model, data, cfg, 0.0, torch.Generator().manual_seed(0), correction)
    assert model.weight.detach().flatten().tolist() == pytest.approx([0.4, -0.7])


def test_without_correction_the_step_is_plain_sgd() -> None:
    model = nn.Linear(1, 2, bias=False)
    nn.init.zeros_(model.weight)
    data = Split(torch.ones(1, 1), torch.zeros(1, dtype=torch.int64))
    train(
        model, data, ClientConfig(local_epochs=1, batch_size=1, lr=1.0), 0.0, torch.Generator().manual_seed(0)
    )
    assert model.weight.detach().flatten().tolist() == pytest.approx([0.5, -0.5])
