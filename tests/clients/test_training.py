"""Local training: the FedProx term, determinism, learning, evaluation, text windows, clipping."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from clients.training import evaluate, proximal_term, train
from fedsim.data import Split
from fedsim.models.build import build_model
from fedsim.scenario.sections import ClientConfig, ModelConfig


def linear(w: list[float], b: float = 0.0) -> nn.Linear:
    layer = nn.Linear(len(w), 1)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([w]))
        layer.bias.fill_(b)
    return layer


def test_proximal_term_value_and_gradient_by_hand() -> None:
    # w = (3, 4), b = 1; anchor w = (1, 1), b = 0; mu = 0.5
    # term = 0.5/2 * ((3-1)^2 + (4-1)^2 + (1-0)^2) = 0.25 * 14 = 3.5
    # gradient = mu * (w - anchor) = (1.0, 1.5) and 0.5 for b
    model = linear([3.0, 4.0], b=1.0)
    anchor = [torch.tensor([[1.0, 1.0]]), torch.tensor([0.0])]
    term = proximal_term(model, anchor, mu=0.5)
    term.backward()
    assert term.item() == 3.5
    assert model.weight.grad is not None and model.bias.grad is not None
    assert model.weight.grad.tolist() == [[1.0, 1.5]]
    assert model.bias.grad.tolist() == [0.5]


def separable(n: int = 200) -> Split:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 2, generator=g)
    return Split(x, (x[:, 0] > 0).long())


def classifier() -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(2, 2)


def test_training_learns_a_separable_problem() -> None:
    model, data = classifier(), separable()
    before = evaluate(model, data)
    loss = train(
        model,
        data,
        ClientConfig(local_epochs=5, batch_size=10, lr=0.5),
        0.0,
        torch.Generator().manual_seed(0),
    )
    after = evaluate(model, data)
    assert after[0] < before[0] and after[1] >= 0.95 and loss > 0


def test_same_generator_seed_same_weights() -> None:
    cfg = ClientConfig(local_epochs=2, batch_size=7, lr=0.1, momentum=0.9)
    results = []
    for _ in range(2):
        model = classifier()
        train(model, separable(), cfg, 0.01, torch.Generator().manual_seed(5))
        results.append(model.weight.detach().clone())
    assert torch.equal(results[0], results[1])


def test_large_mu_keeps_weights_near_the_global_model() -> None:
    cfg = ClientConfig(local_epochs=3, batch_size=10, lr=0.1)

    def drift(mu: float) -> float:
        model = classifier()
        start = model.weight.detach().clone()
        train(model, separable(), cfg, mu, torch.Generator().manual_seed(0))
        return float((model.weight.detach() - start).norm())

    assert drift(5.0) < 0.5 * drift(0.0)


def test_evaluate_by_hand() -> None:
    # logits = x @ [[1, 0], [0, 1]]: predicts argmax of the features.
    model = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(2))
    x = torch.tensor([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]])
    y = torch.tensor([0, 1, 1])
    loss, accuracy = evaluate(model, Split(x, y), batch_size=2)
    # per-sample cross-entropy: log(1 + e^-2) for the two right, log(1 + e^2) for the wrong one
    expected = (
        2 * torch.log1p(torch.exp(torch.tensor(-2.0))) + torch.log1p(torch.exp(torch.tensor(2.0)))
    ) / 3
    assert abs(loss - expected.item()) < 1e-6
    assert accuracy == 2 / 3


def _flat(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def _windows() -> Split:
    tokens = torch.randint(0, 10, (20, 6), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    return Split(tokens, torch.arange(20) % 10)


def test_a_clipped_sgd_step_moves_the_weights_at_most_lr_times_the_max_norm() -> None:
    model = build_model(
        ModelConfig(name="lstm", params={"hidden_size": 8, "num_layers": 1}), (6,), 10, seed=0
    )
    before = _flat(model)
    cfg = ClientConfig(batch_size=20, lr=1.0, max_grad_norm=0.01)  # one step over the 20 windows
    train(model, _windows(), cfg, 0.0, torch.Generator().manual_seed(0))
    step = float((_flat(model) - before).norm())
    assert 0 < step <= 1.0 * 0.01 + 1e-6


def test_without_clipping_the_same_step_is_larger() -> None:
    model = build_model(
        ModelConfig(name="lstm", params={"hidden_size": 8, "num_layers": 1}), (6,), 10, seed=0
    )
    before = _flat(model)
    train(model, _windows(), ClientConfig(batch_size=20, lr=1.0), 0.0, torch.Generator().manual_seed(0))
    assert float((_flat(model) - before).norm()) > 0.01


def test_evaluate_widens_uint8_windows_and_averages_over_uneven_batches() -> None:
    model = build_model(ModelConfig(name="gru", params={"hidden_size": 8, "num_layers": 1}), (6,), 10, seed=0)
    data = _windows()
    loss, accuracy = evaluate(model, data, batch_size=7)  # batches of 7, 7 and 6
    with torch.no_grad():
        logits = model(data.x.long())
    assert loss == pytest.approx(float(F.cross_entropy(logits, data.y)), rel=1e-5)
    assert accuracy == pytest.approx(float((logits.argmax(dim=1) == data.y).float().mean()))
