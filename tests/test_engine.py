"""End to end through the real Flower simulation engine and Ray (no mocks)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fedsim.models.build import build_model
from fedsim.results.run_dir import read_metrics
from fedsim.scenario.sections import ModelConfig
from tests.conftest import REPO, default_sigint, simulate

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("ray_cluster")]

QUICKSTART = (REPO / "fedsim" / "quickstart.toml").read_text()


def test_quickstart_learns_above_chance_in_two_rounds(tmp_path: Path) -> None:
    summary, reporter = simulate(QUICKSTART, tmp_path / "run", overrides=("rounds=2",))
    assert summary.status == "completed" and summary.rounds_completed == 2
    assert summary.final_accuracy is not None and summary.final_accuracy > 0.3  # 10 classes: chance 0.1
    assert [r.round for r in reporter.rounds] == [1, 2]
    assert reporter.population == 30


def test_run_folder_holds_scenario_metrics_summary_and_model(tmp_path: Path) -> None:
    out = tmp_path / "run"
    simulate(QUICKSTART, out, overrides=("rounds=3", "evaluation.every=2"))
    rows = read_metrics(out)
    assert [r["round"] for r in rows] == [1, 2, 3]
    assert rows[0]["accuracy"] is None  # not due: every 2 rounds
    assert rows[1]["accuracy"] is not None and rows[2]["accuracy"] is not None  # the last always is
    for row in rows:
        assert row["clients_sampled"] == 10 and row["clients_failed"] == 0
        assert row["round_time_s"] > 0 and row["train_loss"] > 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["final_accuracy"] == rows[2]["accuracy"]
    assert summary["rounds_completed"] == 3 and summary["wall_time_s"] > 0
    assert "rounds = 3" in (out / "scenario.toml").read_text()
    state = torch.load(out / "model.pt")
    model = build_model(ModelConfig("mlp"), (60,), 10, seed=0)
    model.load_state_dict(state)  # the saved weights fit the scenario's model


def test_a_run_stops_at_the_first_evaluation_reaching_its_target(tmp_path: Path) -> None:
    out = tmp_path / "run"
    target = ("evaluation.target_accuracy=0.3", "evaluation.stop_at_target=true")
    summary, _ = simulate(QUICKSTART, out, overrides=("rounds=20", *target))
    rows = read_metrics(out)
    assert summary.status == "completed" and summary.rounds_completed == len(rows) < 20
    assert [r["accuracy"] >= 0.3 for r in rows] == [False] * (len(rows) - 1) + [True]
    assert summary.round_reached_target == len(rows) and summary.time_to_target_s == rows[-1]["elapsed_s"]
    elapsed = [r["elapsed_s"] for r in rows]
    assert elapsed == sorted(elapsed) and 0 < elapsed[-1] <= summary.wall_time_s


def test_same_seed_gives_identical_metrics(tmp_path: Path) -> None:
    overrides = ("rounds=2", "strategy.fraction_evaluate=0.2")
    simulate(QUICKSTART, tmp_path / "a", overrides=overrides)
    simulate(QUICKSTART, tmp_path / "b", overrides=overrides)
    keys = ("accuracy", "loss", "train_loss", "fed_accuracy", "fed_loss")
    a, b = read_metrics(tmp_path / "a"), read_metrics(tmp_path / "b")
    assert [[r[k] for k in keys] for r in a] == [[r[k] for k in keys] for r in b]
    assert a[0]["fed_accuracy"] is not None


def test_int8_uplink_sends_a_quarter_of_the_bytes_and_still_learns(tmp_path: Path) -> None:
    out = tmp_path / "run"
    summary, _ = simulate(QUICKSTART, out, overrides=("rounds=2", 'compression.uplink="int8"'))
    assert summary.final_accuracy is not None and summary.final_accuracy > 0.3  # chance: 0.1
    model = build_model(ModelConfig("mlp"), (60,), 10, seed=0).state_dict()
    # The model goes down in float32 (downlink "none"): what the same run sends up uncompressed.
    fp32 = 10 * sum(128 + 4 * t.numel() + len(name) for name, t in model.items())
    int8 = 10 * sum(128 + t.numel() + len(name) + 128 + 4 + len(f"{name}:scale") for name, t in model.items())
    for row in read_metrics(out):
        assert row["bytes_sent"] == fp32 and row["bytes_received"] == int8
    assert 3.85 < fp32 / int8 < 4  # 218 450 / 56 090 = 3.89 per client: the headers weigh a little


def test_mnist_mlp_iid_reaches_90_percent(tmp_path: Path, data_dir: Path) -> None:
    scenario = """
        name = "mnist-mlp"
        rounds = 2
        [data]
        dataset = "mnist"
        num_clients = 10
        [model]
        name = "mlp"
        [client]
        batch_size = 32
        lr = 0.05
        [strategy]
        name = "fedprox"
        fraction_train = 1.0
        [strategy.params]
        proximal_mu = 0.001
    """
    summary, _ = simulate(scenario, tmp_path / "run", data_dir)
    assert summary.final_accuracy is not None and summary.final_accuracy >= 0.90


# A script calling fedsim.run: the first signal raises fedsim.Interrupted, saying which it was.
SCRIPT = """
import sys, fedsim
try:
    fedsim.run(out=sys.argv[1], set=["rounds=500"])
except fedsim.Interrupted as stop:
    print(f"script: signal {stop.signum}: {stop}", file=sys.stderr)
    sys.exit(3)
"""
RUN = ["-m", "fedsim", "run", "--set", "rounds=500", "--out"]


@pytest.mark.parametrize(
    ("argv", "sent", "code", "said"),
    [
        (
            RUN,
            signal.SIGINT,
            130,
            "fedsim: interrupted; finished rounds are in {out} (fedsim run --resume {out}",
        ),
        (
            RUN,
            signal.SIGTERM,
            143,
            "fedsim: interrupted; finished rounds are in {out} (fedsim run --resume {out}",
        ),
        (["-c", SCRIPT], signal.SIGTERM, 3, "script: signal 15: interrupted; finished rounds are in {out}"),
    ],
    ids=["ctrl-c", "kill", "script-kill"],
)
def test_ctrl_c_or_kill_exits_as_the_shell_says_and_keeps_the_finished_rounds(
    tmp_path: Path, argv: list[str], sent: signal.Signals, code: int, said: str
) -> None:
    out = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, *argv, str(out)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
        preexec_fn=default_sigint,
    )
    assert process.stderr is not None
    for line in process.stderr:
        if line.startswith("round   2"):
            process.send_signal(sent)
            break
    try:
        assert process.wait(timeout=120) == code  # a bound against hanging, not a speed check
    finally:
        process.kill()
    rest = process.stderr.read()
    assert any(line.startswith(said.format(out=out)) for line in rest.splitlines()), rest
    if argv is RUN:  # the command's last word; a script goes on as it likes (here: Ray's exit)
        assert rest.splitlines()[-1].startswith(said.format(out=out)), rest
        assert "Traceback" not in rest and "SIGTERM received" not in rest  # Ray's C++ stack dump, once
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["error"] == "interrupted"
    rounds = [r["round"] for r in read_metrics(out)]
    assert rounds[:2] == [1, 2] and rounds == list(range(1, len(rounds) + 1))
    assert summary["rounds_completed"] == len(rounds)
