"""A user's model, data set, strategy and local update through Flower + Ray: by import path and
as Python objects, resumed after a stop, repeated from the seed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

import fedsim
from fedsim.results.records import RoundRecord
from fedsim.results.run_dir import read_metrics
from fedsim.scenario.files import load_scenario
from fedsim.sim import engine
from tests.conftest import RecordingReporter

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("ray_cluster")]

PLUGINS = '''
import numpy as np
import torch
import torch.nn.functional as F
from flwr.serverapp.strategy import FedAvg
from torch import nn

import fedsim


def blobs(root, *, n: int = 400, seed: int = 0):
    """Three classes of 4-d points; sample i belongs to writer i % 8."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = (rng.normal(size=(n, 4)) + 2.0 * y[:, None]).astype(np.float32)
    return fedsim.Dataset(train=(x[:300], y[:300]), test=(x[300:], y[300:]), client_ids=np.arange(300) % 8)


def mlp(input_shape, num_classes, *, hidden: int = 8):
    return nn.Sequential(nn.Linear(input_shape[0], hidden), nn.ReLU(), nn.Linear(hidden, num_classes))


def local_sgd(model, data, ctx, *, lr_scale: float = 1.0):
    """Plain SGD that also reports its step count, as FedNova's clients do."""
    optimizer = torch.optim.SGD(model.parameters(), lr=ctx.config.lr * lr_scale)
    total, steps = 0.0, 0
    for _ in range(ctx.config.local_epochs):
        for rows in torch.randperm(len(data), generator=ctx.generator).split(ctx.config.batch_size):
            x, y = data.batch(rows)
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            total, steps = total + float(loss), steps + 1
    return {"train_loss": total / steps, "tau": float(steps)}


class CountingAvg(FedAvg):
    """FedAvg that counts the rounds it aggregated: state a checkpoint must keep."""

    def __init__(self, *, damping: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.damping = damping
        self.rounds_seen = 0

    def aggregate_train(self, server_round, replies):
        arrays, metrics = super().aggregate_train(server_round, replies)
        self.rounds_seen += 1
        if metrics is not None:
            metrics["rounds_seen"] = float(self.rounds_seen)
        return arrays, metrics
'''

SCENARIO = """\
name = "plugged"
rounds = 3
[data]
dataset = "nova:blobs"
partition = "natural"
[model]
name = "nova:mlp"
[model.params]
hidden = 16
[client]
update = "nova:local_sgd"
lr = 0.1
[strategy]
name = "nova:CountingAvg"
fraction_train = 0.5
"""
WALL_CLOCK = ("round_time_s", "eval_time_s", "elapsed_s")


def comparable(run_dir: Path) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k not in WALL_CLOCK} for row in read_metrics(run_dir)]


class StopAfter(RecordingReporter):
    def __init__(self, last: int) -> None:
        super().__init__()
        self.last = last

    def round_done(self, record: RoundRecord) -> None:
        super().round_done(record)
        if record.round == self.last:
            raise RuntimeError("stopped for the test")


@pytest.fixture
def scenario_file(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "nova.py").write_text(PLUGINS)
    (folder / "scenario.toml").write_text(SCENARIO)
    return folder / "scenario.toml"


def test_plugins_by_import_path_record_their_metrics_and_resume_as_if_never_stopped(
    scenario_file: Path, tmp_path: Path
) -> None:
    scenario = load_scenario(scenario_file)
    engine.run(engine.prepare(scenario, tmp_path / "whole", None), RecordingReporter())
    rows = read_metrics(tmp_path / "whole")
    assert [r["rounds_seen"] for r in rows] == [1.0, 2.0, 3.0]  # the strategy's own metric
    assert all(r["tau"] > 0 and r["accuracy"] is not None for r in rows)  # the update's, averaged
    assert rows[-1]["accuracy"] > 0.5  # three well separated classes: it learnt something

    with pytest.raises(RuntimeError, match="stopped for the test"):
        engine.run(engine.prepare(scenario, tmp_path / "stopped", None), StopAfter(1))
    job = engine.prepare(scenario, tmp_path / "stopped", None, resume=True)
    engine.run(job, RecordingReporter())
    assert comparable(tmp_path / "stopped") == comparable(tmp_path / "whole")  # its counter came back


def test_python_objects_run_as_their_import_paths_do(scenario_file: Path, tmp_path: Path) -> None:
    """Loaded from a file no worker can import: the objects travel to Ray by value."""
    spec = importlib.util.spec_from_file_location("nova_objects", scenario_file.with_name("nova.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["nova_objects"] = module
    spec.loader.exec_module(module)
    quiet = Console(quiet=True)
    by_path = fedsim.run(scenario_file, out=tmp_path / "by-path", console=quiet)
    given = fedsim.run(
        scenario_file,
        out=tmp_path / "objects",
        model=module.mlp,
        dataset=module.blobs,
        strategy=module.CountingAvg,
        update=module.local_sgd,
        console=quiet,
    )
    assert given.scenario.model.name == "nova_objects:mlp"
    assert comparable(given.out) == comparable(by_path.out)
    assert given.summary["final_accuracy"] == by_path.summary["final_accuracy"]
    assert set(given.weights) == set(by_path.weights)
