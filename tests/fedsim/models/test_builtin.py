"""Model sizes from McMahan et al. 2017, text models' output shapes, deterministic initialization."""

from __future__ import annotations

import pytest
import torch

from fedsim.models.build import build_model, count_parameters
from fedsim.scenario.sections import ModelConfig


@pytest.mark.parametrize(("name", "count"), [("cnn", 1_663_370), ("mlp", 199_210), ("logreg", 7_850)])
def test_parameter_counts_on_mnist(name: str, count: int) -> None:
    assert count_parameters(build_model(ModelConfig(name), (1, 28, 28), 10, seed=0)) == count


def test_cnn_takes_cifar10s_colour_images() -> None:
    model = build_model(ModelConfig("cnn"), (3, 32, 32), 10, seed=0)
    convolutions = (3 * 32 * 25 + 32) + (32 * 64 * 25 + 64)
    assert count_parameters(model) == convolutions + (64 * 8 * 8 * 512 + 512) + (512 * 10 + 10)
    assert model(torch.zeros(4, 3, 32, 32)).shape == (4, 10)


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


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_text_models_give_one_row_of_vocabulary_logits_per_window(name: str) -> None:
    cfg = ModelConfig(name=name, params={"embedding_dim": 4, "hidden_size": 16, "num_layers": 1})
    model = build_model(cfg, input_shape=(12,), num_classes=30, seed=0)
    logits = model(torch.randint(0, 30, (5, 12)))
    assert logits.shape == (5, 30) and logits.dtype == torch.float32


def test_mcmahan_shakespeare_lstm_has_the_papers_layers() -> None:
    # 8-dim embedding, 2 LSTM layers of 256, a linear layer over the vocabulary. With a
    # vocabulary of V ids: 8V + (4*256*(8+256) + 2*4*256) + (4*256*(256+256) + 2*4*256) + 257V.
    vocab = 65
    model = build_model(ModelConfig(name="lstm"), input_shape=(80,), num_classes=vocab, seed=0)
    assert count_parameters(model) == 8 * vocab + 272_384 + 526_336 + 257 * vocab


def test_gru_has_three_gates_where_lstm_has_four() -> None:
    cfg: dict[str, object] = {"embedding_dim": 8, "hidden_size": 10, "num_layers": 1}
    lstm = build_model(ModelConfig(name="lstm", params=cfg), (5,), 20, seed=0)
    gru = build_model(ModelConfig(name="gru", params=cfg), (5,), 20, seed=0)
    recurrent = 10 * (8 + 10) + 2 * 10  # one gate's weights and two biases
    assert count_parameters(lstm) - count_parameters(gru) == recurrent


def test_the_same_seed_gives_the_same_initial_weights() -> None:
    cfg = ModelConfig(name="gru", params={"hidden_size": 8, "num_layers": 2})
    a, b, c = (build_model(cfg, (6,), 12, seed=s) for s in (3, 3, 4))
    assert all(
        torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )
    assert not torch.equal(a.state_dict()["rnn.weight_ih_l0"], c.state_dict()["rnn.weight_ih_l0"])
