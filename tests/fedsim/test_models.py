"""Model registry: output shapes, sizes and seeded initialization of the text models."""

from __future__ import annotations

import pytest
import torch

from fedsim.models import build_model, count_parameters
from fedsim.scenario import ModelConfig


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_text_models_give_one_row_of_vocabulary_logits_per_window(name: str) -> None:
    cfg = ModelConfig(name=name, embedding_dim=4, hidden_size=16, num_layers=1)  # type: ignore[arg-type]
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
    cfg = {"embedding_dim": 8, "hidden_size": 10, "num_layers": 1}
    lstm = build_model(ModelConfig(name="lstm", **cfg), (5,), 20, seed=0)  # type: ignore[arg-type]
    gru = build_model(ModelConfig(name="gru", **cfg), (5,), 20, seed=0)  # type: ignore[arg-type]
    recurrent = 10 * (8 + 10) + 2 * 10  # one gate's weights and two biases
    assert count_parameters(lstm) - count_parameters(gru) == recurrent


def test_the_same_seed_gives_the_same_initial_weights() -> None:
    cfg = ModelConfig(name="gru", hidden_size=8, num_layers=2)
    a, b, c = (build_model(cfg, (6,), 12, seed=s) for s in (3, 3, 4))
    assert all(
        torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )
    assert not torch.equal(a.state_dict()["rnn.weight_ih_l0"], c.state_dict()["rnn.weight_ih_l0"])
