"""Local training: the gradient terms, determinism, learning, evaluation, text windows, clipping."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from clients.training import add_terms, evaluate, train
from fedsim.data import Split
from fedsim.models.build import build_model
from fedsim.scenario.sections import ClientConfig, ModelConfig
from strategies.algorithm import Offset, Proximal, Term


def proximal(model: nn.Module, mu: float) -> tuple[Term, ...]:
    """FedProx's term towards the model as it is now (strategies/fedprox.py)."""
    return (Proximal(mu, {n: p.detach().clone() for n, p in model.named_parameters()}),) if mu else ()


def linear(w: list[float], b: float = 0.0) -> nn.Linear:
    layer = nn.Linear(len(w), 1)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([w]))
        layer.bias.fill_(b)
    return layer


def test_terms_by_hand_are_added_to_the_batch_gradient_in_order() -> None:
    # w = (3, 4), b = 1; anchor w = (1, 1), b = 0; mu = 0.5: the proximal gradient
    # mu * (w - anchor) = (1.0, 1.5) and 0.5 for b, then the offset (0.25, 0.25) and 0.25,
    # added to a batch gradient of (1, 1) on w; b had none, so it gets the terms alone.
    model = linear([3.0, 4.0], b=1.0)
    model.weight.grad = torch.ones(1, 2)
    anchor = {"weight": torch.tensor([[1.0, 1.0]]), "bias": torch.tensor([0.0])}
    offset = {"weight": torch.full((1, 2), 0.25), "bias": torch.tensor([0.25])}
    add_terms((Proximal(0.5, anchor), Offset(offset)), dict(model.named_parameters()))
    assert model.weight.grad.tolist() == [[2.25, 2.75]]
    assert model.bias.grad is not None and model.bias.grad.tolist() == [0.75]
    assert model.weight.tolist() == [[3.0, 4.0]]  # the weights themselves untouched


def test_without_terms_a_parameter_without_gradient_keeps_none() -> None:
    model = linear([3.0, 4.0])
    add_terms((), dict(model.named_parameters()))
    assert model.weight.grad is None  # SGD skips it, as torch.optim.SGD does


def test_an_offset_is_added_to_every_step_of_training() -> None:
    """Logits W x with W = 0 and x = 1: softmax (0.5, 0.5), label 0, so dL/dW = (-0.5, 0.5).

    With the offset (0.1, 0.2) and lr 1, one step gives W = -(g + offset) = (0.4, -0.7).
    """
    model = nn.Linear(1, 2, bias=False)
    nn.init.zeros_(model.weight)
    data = Split(torch.ones(1, 1), torch.zeros(1, dtype=torch.int64))
    cfg = ClientConfig(local_epochs=1, batch_size=1, lr=1.0)
    offset = Offset({"weight": torch.tensor([[0.1], [0.2]])})
    train(model, data, cfg, torch.Generator().manual_seed(0), (offset,))
    assert model.weight.detach().flatten().tolist() == pytest.approx([0.4, -0.7])


def test_the_in_place_proximal_step_equals_autograds() -> None:
    cfg = ClientConfig(local_epochs=2, batch_size=10, lr=0.1, momentum=0.9)
    mu, data = 0.5, separable()
    model = classifier()
    train(model, data, cfg, torch.Generator().manual_seed(3), proximal(model, mu))
    reference = classifier()  # the same steps, the term differentiated by autograd
    anchor = [p.detach().clone() for p in reference.parameters()]
    optimizer = torch.optim.SGD(reference.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    generator = torch.Generator().manual_seed(3)
    for _ in range(cfg.local_epochs):
        for batch in torch.randperm(len(data), generator=generator).split(cfg.batch_size):
            optimizer.zero_grad()
            x, y = data.batch(batch)
            squares = sum(((p - a) ** 2).sum() for p, a in zip(reference.parameters(), anchor, strict=True))
            (F.cross_entropy(reference(x), y) + 0.5 * mu * squares).backward()
            optimizer.step()
    for mine, theirs in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-6, atol=1e-7)


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
        torch.Generator().manual_seed(0),
    )
    after = evaluate(model, data)
    assert after[0] < before[0] and after[1] >= 0.95 and loss > 0


@pytest.mark.parametrize(("momentum", "weight_decay"), [(0.0, 0.0), (0.9, 0.0), (0.5, 0.01)])
def test_training_takes_torch_optim_sgds_steps_exactly(momentum: float, weight_decay: float) -> None:
    """The in-place step equals the textbook loop with ``torch.optim.SGD``, bit for bit."""
    cfg = ClientConfig(local_epochs=2, batch_size=7, lr=0.1, momentum=momentum, weight_decay=weight_decay)
    data = separable()
    ours, theirs = classifier(), classifier()
    train(ours, data, cfg, torch.Generator().manual_seed(3))
    optimizer = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=momentum, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(3)
    for _ in range(cfg.local_epochs):
        for batch in torch.randperm(len(data), generator=generator).split(cfg.batch_size):
            optimizer.zero_grad()
            F.cross_entropy(theirs(data.x[batch]), data.y[batch]).backward()
            optimizer.step()
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        assert torch.equal(a, b)


def test_same_generator_seed_same_weights() -> None:
    cfg = ClientConfig(local_epochs=2, batch_size=7, lr=0.1, momentum=0.9)
    results = []
    for _ in range(2):
        model = classifier()
        train(model, separable(), cfg, torch.Generator().manual_seed(5), proximal(model, 0.01))
        results.append(model.weight.detach().clone())
    assert torch.equal(results[0], results[1])


def test_large_mu_keeps_weights_near_the_global_model() -> None:
    cfg = ClientConfig(local_epochs=3, batch_size=10, lr=0.1)

    def drift(mu: float) -> float:
        model = classifier()
        start = model.weight.detach().clone()
        train(model, separable(), cfg, torch.Generator().manual_seed(0), proximal(model, mu))
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
    train(model, _windows(), cfg, torch.Generator().manual_seed(0))
    step = float((_flat(model) - before).norm())
    assert 0 < step <= 1.0 * 0.01 + 1e-6


def test_without_clipping_the_same_step_is_larger() -> None:
    model = build_model(
        ModelConfig(name="lstm", params={"hidden_size": 8, "num_layers": 1}), (6,), 10, seed=0
    )
    before = _flat(model)
    train(model, _windows(), ClientConfig(batch_size=20, lr=1.0), torch.Generator().manual_seed(0))
    assert float((_flat(model) - before).norm()) > 0.01


def test_evaluate_widens_uint8_windows_and_averages_over_uneven_batches() -> None:
    model = build_model(ModelConfig(name="gru", params={"hidden_size": 8, "num_layers": 1}), (6,), 10, seed=0)
    data = _windows()
    loss, accuracy = evaluate(model, data, batch_size=7)  # batches of 7, 7 and 6
    with torch.no_grad():
        logits = model(data.x.long())
    assert loss == pytest.approx(float(F.cross_entropy(logits, data.y)), rel=1e-5)
    assert accuracy == pytest.approx(float((logits.argmax(dim=1) == data.y).float().mean()))
