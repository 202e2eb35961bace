"""`fedsim compare --tensorboard`: every variant is a TensorBoard run of its own, read back."""

from __future__ import annotations

from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

from fedsim.cli import main

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("ray_cluster")]


def test_compare_logs_each_variant_as_a_tensorboard_run(tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    argv = ["compare", "--strategy", "fedavg", "--strategy", "fedprox:proximal_mu=0.1", "--tensorboard"]
    argv += ["--set", "rounds=2", "--set", "data.params.devices=4", "--out", str(out)]
    assert main(argv) == 0
    runs = EventMultiplexer().AddRunsFromDirectory(str(out))
    runs.Reload()
    assert sorted(runs.Runs()) == ["fedavg-seed0/tensorboard", "fedprox-proximal_mu-0.1-seed0/tensorboard"]
    for run in runs.Runs():
        accuracy = runs.Scalars(run, "eval/accuracy")
        assert [e.step for e in accuracy] == [1, 2] and all(0 <= e.value <= 1 for e in accuracy)
