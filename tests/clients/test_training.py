"""Local training: token windows go through the same loop, and gradient clipping bounds a step."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from clients.training import evaluate, train
from fedsim.data import Split
from fedsim.models import build_model
from fedsim.scenario import ClientConfig, ModelConfig


def _flat(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def _windows() -> Split:
    tokens = torch.randint(0, 10, (20, 6), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    return Split(tokens, torch.arange(20) % 10)


def test_a_clipped_sgd_step_moves_the_weights_at_most_lr_times_the_max_norm() -> None:
    model = build_model(ModelConfig(name="lstm", hidden_size=8, num_layers=1), (6,), 10, seed=0)
    before = _flat(model)
    cfg = ClientConfig(batch_size=20, lr=1.0, max_grad_norm=0.01)  # one step over the 20 windows
    train(model, _windows(), cfg, 0.0, torch.Generator().manual_seed(0))
    step = float((_flat(model) - before).norm())
    assert 0 < step <= 1.0 * 0.01 + 1e-6


def test_without_clipping_the_same_step_is_larger() -> None:
    model = build_model(ModelConfig(name="lstm", hidden_size=8, num_layers=1), (6,), 10, seed=0)
    before = _flat(model)
    train(model, _windows(), ClientConfig(batch_size=20, lr=1.0), 0.0, torch.Generator().manual_seed(0))
    assert float((_flat(model) - before).norm()) > 0.01


def test_evaluate_widens_uint8_windows_and_averages_over_uneven_batches() -> None:
    model = build_model(ModelConfig(name="gru", hidden_size=8, num_layers=1), (6,), 10, seed=0)
    data = _windows()
    loss, accuracy = evaluate(model, data, batch_size=7)  # batches of 7, 7 and 6
    with torch.no_grad():
        logits = model(data.x.long())
    assert loss == pytest.approx(float(F.cross_entropy(logits, data.y)), rel=1e-5)
    assert accuracy == pytest.approx(float((logits.argmax(dim=1) == data.y).float().mean()))
