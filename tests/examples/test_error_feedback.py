"""examples/error_feedback: a user's stateful algorithm (top-k with error feedback), by hand and run.

By hand, one array and keep = 0.5 (two of four coordinates): x = [0, 0, 0, 0], y = [0.4, -0.1,
0.2, -0.3], a kept residual e = [0, 0.3, 0, 0]:
  delta = y - x + e = [0.4, 0.2, 0.2, -0.3];  the two largest magnitudes: 0.4 and -0.3
  sent  = [0.4, 0, 0, -0.3];  e+ = delta - sent = [0, 0.2, 0.2, 0];  ||e+|| = sqrt(0.08)
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from clients import app
from fedsim import protocol as keys
from fedsim.cli import main
from fedsim.models.build import build_model
from fedsim.results.run_dir import read_metrics
from fedsim.scenario.files import parse_scenario
from strategies.algorithm import ClientStart
from tests.clients.test_app import message, node, reply_model
from tests.examples import EXAMPLES, example_module

SCENARIO = EXAMPLES / "error_feedback" / "scenario.toml"
topk = example_module("error_feedback", "topk")


def test_top_k_keeps_the_largest_magnitudes() -> None:
    values = np.array([[0.4, 0.2], [0.2, -0.3]], dtype=np.float32)
    assert topk.top_k(values, 0.5).tolist() == [[values[0, 0], 0.0], [0.0, values[1, 1]]]
    assert topk.top_k(values, 0.01).tolist() == [[values[0, 0], 0.0], [0.0, 0.0]]  # at least one


def start(x: dict[str, np.ndarray], residual: dict[str, np.ndarray], keep: float) -> ClientStart:
    return ClientStart(None, x, {}, {topk.RESIDUAL: residual}, None, {topk.KEEP: keep}, None)  # type: ignore[arg-type]


def test_finish_sends_the_top_k_update_and_keeps_the_rest_by_hand() -> None:
    x = {"w": np.zeros(4, np.float32)}
    y = {"w": np.array([0.4, -0.1, 0.2, -0.3], np.float32)}
    done = topk.finish(start(x, {"w": np.array([0, 0.3, 0, 0], np.float32)}, 0.5), y, steps=7)
    assert done.model is not None and done.state is not None
    assert done.model["w"].tolist() == pytest.approx([0.4, 0.0, 0.0, -0.3])
    assert done.state[topk.RESIDUAL]["w"].tolist() == pytest.approx([0.0, 0.2, 0.2, 0.0])
    assert done.metrics[topk.NORM] == pytest.approx(math.sqrt(0.08))


def test_keeping_everything_sends_the_trained_model_itself() -> None:
    x, y = {"w": np.zeros(3, np.float32)}, {"w": np.array([0.1, 0.2, 0.3], np.float32)}
    done = topk.finish(start(x, {"w": np.zeros(3, np.float32)}, 1.0), y, steps=1)
    assert done.model is None and not done.state[topk.RESIDUAL]["w"].any()  # type: ignore[index]


@pytest.mark.usefixtures("task_identity")
def test_a_client_sends_the_sparse_update_and_keeps_its_residual() -> None:
    scenario = parse_scenario(SCENARIO.read_text(), (f"python_path=['{SCENARIO.parent}']",))
    toml, context = scenario.to_toml(), node(2, allow="topk")
    x = {k: v.numpy() for k, v in build_model(scenario.model, (60,), 10, seed=0).state_dict().items()}
    reply = app.train(message(toml, x, 1, config={topk.KEEP: 0.1}), context)
    sent = reply_model(reply)
    kept = keys.to_numpy(context.state.array_records[keys.state_record(topk.RESIDUAL)])
    for name, e in kept.items():
        moved = sent[name] - x[name]
        assert np.count_nonzero(moved) <= math.ceil(0.1 * moved.size) and np.any(e)
        assert not np.any(moved * e)  # a coordinate is sent or kept, never both
    assert reply.content.metric_records[keys.METRICS][topk.NORM] > 0


@pytest.mark.engine
@pytest.mark.usefixtures("ray_cluster")
def test_the_readme_command_runs_on_ray_and_each_row_has_the_residual_norm(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["run", str(SCENARIO), "--set", "rounds=3", "--out", str(out)]) == 0
    rows = read_metrics(out)
    assert [r["round"] for r in rows] == [1, 2, 3] and all(r[topk.NORM] > 0 for r in rows)
    assert rows[-1]["accuracy"] > 0.2  # ten classes
