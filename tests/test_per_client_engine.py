"""Per-client evaluation end to end, through the real Flower simulation engine and Ray."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedsim.results import per_client
from fedsim.results.run_dir import read_metrics
from tests.conftest import REPO, simulate

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("ray_cluster")]

QUICKSTART = (REPO / "fedsim" / "quickstart.toml").read_text()


def test_every_client_is_evaluated_on_its_own_test_data_and_recorded(tmp_path: Path) -> None:
    out = tmp_path / "run"
    settings = ("rounds=3", 'evaluation.clients="all"', "evaluation.clients_every=2")
    summary, _ = simulate(QUICKSTART, out, overrides=settings)
    rows = read_metrics(out)
    evaluated = per_client.read(out)
    assert [r for r, _ in evaluated] == [2, 3]  # every 2 rounds, and the last
    assert "client_acc_mean" not in rows[0]
    for server_round, outcomes in evaluated:
        row = rows[server_round - 1]
        assert sorted(o.partition for o in outcomes) == list(range(30))  # Synthetic's 30 devices
        assert row["clients_evaluated"] == 30
        accuracies = [o.accuracy for o in outcomes]
        assert row == {**row, **per_client.distribution(accuracies)}  # the row's are the file's
        assert all(o.samples > 0 for o in outcomes)
    assert summary.clients == per_client.final(rows)
    assert json.loads((out / "summary.json").read_text())["clients"]["client_acc_mean"] == pytest.approx(
        rows[2]["client_acc_mean"]
    )


def test_a_fraction_of_the_clients_is_sampled_from_the_seed(tmp_path: Path) -> None:
    settings = ("rounds=1", "evaluation.clients=0.2")
    simulate(QUICKSTART, tmp_path / "a", overrides=settings)
    simulate(QUICKSTART, tmp_path / "b", overrides=settings)
    (_, first), (_, again) = per_client.read(tmp_path / "a")[0], per_client.read(tmp_path / "b")[0]
    assert len(first) == 6 and first == again


HELD_OUT = """
name = "held-out"
rounds = 2
[data]
dataset = "tests.held_out_plugin:load"
num_clients = 10
client_test_fraction = 0.2
[data.params]
num_clients = 10
fraction = 0.2
[model]
name = "logreg"
[strategy]
fraction_train = 0.5
[evaluation]
clients = "all"
"""


def test_held_out_samples_never_train(tmp_path: Path) -> None:
    """Poisoning every held-out sample changes what clients are tested on, and not one bit of
    what they train."""
    simulate(HELD_OUT, tmp_path / "clean")
    simulate(HELD_OUT, tmp_path / "poisoned", overrides=("data.params.poison=true",))
    clean, poisoned = read_metrics(tmp_path / "clean"), read_metrics(tmp_path / "poisoned")
    for a, b in zip(clean, poisoned, strict=True):
        assert a["train_loss"] == b["train_loss"] and a["accuracy"] == b["accuracy"]
        assert b["client_acc_mean"] < a["client_acc_mean"] - 0.1  # tested on the poisoned samples
    assert (tmp_path / "clean" / "model.pt").read_bytes() == (tmp_path / "poisoned" / "model.pt").read_bytes()


@pytest.mark.parametrize("name", ["fine_tune", "ditto"])
def test_personal_models_leave_the_global_model_fedavgs_and_report_their_accuracy(
    tmp_path: Path, name: str
) -> None:
    """Fine-tuning happens at evaluation only; Ditto's personal steps after the global update:
    the global model is FedAvg's, bit for bit, in both."""
    settings = ("rounds=2", 'evaluation.clients="all"')
    simulate(QUICKSTART, tmp_path / "fedavg", overrides=settings)
    simulate(QUICKSTART, tmp_path / "tuned", overrides=(*settings, f'strategy.name="{name}"'))
    plain, tuned = read_metrics(tmp_path / "fedavg"), read_metrics(tmp_path / "tuned")
    for a, b in zip(plain, tuned, strict=True):
        assert (a["train_loss"], a["accuracy"], a["client_acc_mean"]) == (
            b["train_loss"],
            b["accuracy"],
            b["client_acc_mean"],
        )
        assert "personal_acc_mean" not in a and b["personal_acc_mean"] != b["client_acc_mean"]
    outcomes = per_client.read(tmp_path / "tuned")[-1][1]
    assert all(o.personal_accuracy is not None for o in outcomes)
