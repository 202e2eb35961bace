"""Shakespeare next-character prediction end to end through Flower + Ray, on the shared corpus."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fedsim.data import find_federated
from fedsim.data.shakespeare import parse_roles, split_role
from fedsim.data.text import read_text
from fedsim.models.build import build_model
from fedsim.results.run_dir import read_metrics, read_vocab
from fedsim.scenario.files import parse_scenario
from tests.conftest import simulate

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("ray_cluster")]

# A small LSTM on the 5 roles with the most text (20,000+ training windows each).
TINY_LSTM = """
name = "shakespeare-tiny-lstm"
rounds = 2
[data]
dataset = "shakespeare"
partition = "natural"

[data.params]
seq_len = 20
min_samples = 20000
eval_windows = 2000
[model]
name = "lstm"

[model.params]
embedding_dim = 8
hidden_size = 32
num_layers = 1
[client]
batch_size = 32
lr = 1.0
max_grad_norm = 5.0
[strategy]
fraction_train = 1.0
"""


def test_small_lstm_beats_the_most_frequent_character_in_two_rounds(
    tmp_path: Path, data_dir: Path, shakespeare_file: Path
) -> None:
    out = tmp_path / "run"
    summary, reporter = simulate(TINY_LSTM, out, data_dir)
    assert summary.status == "completed" and summary.rounds_completed == 2

    # One client per role with enough training text, counted here from the parsed play.
    roles = parse_roles(read_text(shakespeare_file))
    big = [name for name, lines in roles.items() if len(split_role(name, lines).train) - 20 >= 20000]
    assert reporter.population == len(big) == 5

    spec = parse_scenario(TINY_LSTM).data
    test = find_federated(spec, 0, str(data_dir))[0].test
    baseline = float(torch.bincount(test.y).max()) / len(test)  # always the most frequent character
    assert len(test) == 2000 and 0.1 < baseline < 0.25  # a space, about one character in six
    rows = read_metrics(out)
    assert summary.final_accuracy is not None and summary.final_accuracy > baseline
    assert rows[1]["loss"] < rows[0]["loss"]

    vocab = read_vocab(out)  # saved with the run: the model's ids mean these characters
    assert vocab.decode(vocab.encode("First Citizen:\n").tolist()) == "First Citizen:\n"
    model = build_model(parse_scenario(TINY_LSTM).model, (20,), len(vocab), seed=0)
    model.load_state_dict(torch.load(out / "model.pt"))
