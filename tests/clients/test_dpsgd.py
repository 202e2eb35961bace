"""DP-SGD in local training (Opacus): plain SGD without clipping or noise, bounded steps with
clipping, the noise's standard deviation, LSTM weights back under nn.LSTM's names."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clients import dpsgd, training
from fedsim.data import Split
from fedsim.models.build import build_model
from fedsim.scenario.sections import ClientConfig, ModelConfig
from strategies.algorithm import Offset


def data(n: int = 20, features: int = 6, seed: int = 0) -> Split:
    g = torch.Generator().manual_seed(seed)
    return Split(torch.randn(n, features, generator=g), torch.randint(0, 3, (n,), generator=g))


def mlp() -> torch.nn.Module:
    return build_model(ModelConfig("logreg"), (6,), 3, seed=0)


def weights(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_without_clipping_or_noise_a_full_batch_step_is_plain_sgd() -> None:
    cfg = ClientConfig(batch_size=20, lr=0.5)  # one step over all 20 examples (rate 1)
    private, plain = mlp(), mlp()
    dpsgd.train(private, data(), cfg, 1e6, 0.0, torch.Generator(), torch.Generator())
    training.train(plain, data(), cfg, torch.Generator())
    assert torch.allclose(weights(private), weights(plain), atol=1e-6)
    assert not torch.equal(weights(private), weights(mlp()))


def test_per_example_clipping_bounds_the_step() -> None:
    """Without noise, a step is the mean of clipped per-example gradients: at most lr * C long."""
    cfg = ClientConfig(batch_size=20, lr=1.0)
    big = Split(data().x * 100, data().y)
    model = mlp()
    dpsgd.train(model, big, cfg, 0.01, 0.0, torch.Generator(), torch.Generator())
    assert 0 < float((weights(model) - weights(mlp())).norm()) <= 0.01 * (1 + 1e-4)


def test_an_empty_sample_steps_by_noise_of_std_lr_z_c_over_the_expected_batch() -> None:
    model = torch.nn.Linear(1000, 100)  # 100,100 parameters: a large sample of the noise
    before = weights(model)
    cfg = ClientConfig(lr=0.5)
    sampled, optimizer = dpsgd.make_private(model, cfg, 8, 2.0, 1.5, torch.Generator().manual_seed(1))
    params = list(sampled.parameters())
    dpsgd.no_examples(params)
    optimizer.step()
    step = (weights(model) - before).double()
    std = 0.5 * 1.5 * 2.0 / 8
    assert abs(float(step.std()) - std) < 4 * std / np.sqrt(2 * step.numel())


def test_lstm_trains_privately_and_keeps_its_parameter_names() -> None:
    cfg = ModelConfig("lstm", {"embedding_dim": 4, "hidden_size": 8, "num_layers": 2})
    model = build_model(cfg, (5,), 7, seed=0)
    names = list(model.state_dict())
    g = torch.Generator().manual_seed(0)
    text = Split(
        torch.randint(0, 7, (30, 5), generator=g, dtype=torch.int64), torch.randint(0, 7, (30,), generator=g)
    )
    client = ClientConfig(batch_size=10, lr=0.5)

    def run(noise_seed: int) -> torch.Tensor:
        copy = build_model(cfg, (5,), 7, seed=0)
        loss = dpsgd.train(
            copy,
            text,
            client,
            1.0,
            1.0,
            torch.Generator().manual_seed(3),
            torch.Generator().manual_seed(noise_seed),
        )
        assert np.isfinite(loss) and list(copy.state_dict()) == names
        return weights(copy)

    first = run(0)
    assert not torch.equal(first, weights(model))
    assert torch.equal(first, run(0))  # same sampling and noise streams: same weights
    assert not torch.equal(first, run(1))


def test_the_algorithms_terms_are_added_to_the_private_gradient_by_name() -> None:
    """An offset (a control variate's ``c - c_i``) after the noise: one step of lr 0.1 with an offset of
    0.5 on every coordinate moves every weight 0.05 further than the same run without it."""
    cfg = ClientConfig(batch_size=20, lr=0.1)
    base, corrected = mlp(), mlp()
    offset = Offset({n: torch.full_like(p, 0.5) for n, p in base.named_parameters()})
    dpsgd.train(base, data(), cfg, 1e6, 0.0, torch.Generator(), torch.Generator())
    dpsgd.train(corrected, data(), cfg, 1e6, 0.0, torch.Generator(), torch.Generator(), (offset,))
    assert torch.allclose(weights(base) - weights(corrected), torch.full_like(weights(base), 0.05), atol=1e-6)


@pytest.mark.parametrize("model_name", ["mlp", "cnn"])
def test_image_models_train_with_dp_sgd(model_name: str) -> None:
    model = build_model(ModelConfig(model_name), (1, 28, 28), 10, seed=0)
    g = torch.Generator().manual_seed(0)
    images = Split(torch.randn(12, 1, 28, 28, generator=g), torch.randint(0, 10, (12,), generator=g))
    before = weights(model)
    loss = dpsgd.train(model, images, ClientConfig(batch_size=6, lr=0.1), 1.0, 1.0, g, torch.Generator())
    assert np.isfinite(loss) and not torch.equal(before, weights(model))
