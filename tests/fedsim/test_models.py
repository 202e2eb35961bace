"""Model sizes from McMahan et al. 2017 and deterministic initialization."""

from __future__ import annotations

import pytest
import torch

from fedsim.models import build_model, count_parameters
from fedsim.scenario import ModelConfig


@pytest.mark.parametrize(("name", "count"), [("cnn", 1_663_370), ("mlp", 199_210), ("logreg", 7_850)])
def test_parameter_counts_on_mnist(name: str, count: int) -> None:
    assert count_parameters(build_model(ModelConfig(name), (1, 28, 28), 10, seed=0)) == count  # type: ignore[arg-type]


def test_mlp_on_synthetic_features() -> None:
    model = build_model(ModelConfig("mlp"), (60,), 10, seed=0)
    assert count_parameters(model) == 60 * 200 + 200 + 200 * 200 + 200 + 200 * 10 + 10
    assert model(torch.zeros(4, 60)).shape == (4, 10)


def test_same_seed_same_weights_other_seed_other_weights() -> None:
    def weights(seed: int) -> list[torch.Tensor]:
        return list(build_model(ModelConfig("cnn"), (1, 28, 28), 10, seed).state_dict().values())

    a, b, c = weights(1), weights(1), weights(2)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0])


def test_building_a_model_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_model(ModelConfig("cnn"), (1, 28, 28), 10, seed=0)
    assert torch.equal(torch.rand(3), expected)
