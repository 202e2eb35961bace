"""Before a run: a user's plug-ins load and fit together, or `fedsim validate` says in one line
which key, which plug-in and what was expected (exit 2, no traceback)."""

from __future__ import annotations

import contextlib
import io
import textwrap
from pathlib import Path

import pytest
import torch

from fedsim.cli import main
from fedsim.scenario.files import load_scenario
from fedsim.sim.preflight import check

PLUGINS = """
import numpy as np
import torch
from torch import nn
from flwr.serverapp.strategy import FedAvg

import fedsim


def blobs(root, *, n: int = 60, classes: int = 3, mismatched: bool = False, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = (rng.normal(size=(n, 4)) + y[:, None]).astype(np.float32)
    return fedsim.Dataset(train=(x, y if not mismatched else y[:-1]), test=(x[:20], y[:20]))


def not_a_dataset(root):
    return {"x": 1}


def captions(root):
    return fedsim.Dataset(train=(["a cat"] * 8, np.zeros(8, int)), test=(["a dog"] * 2, np.zeros(2, int)))


def pixels(root, *, n: int = 60):
    # Images as stored: uint8.
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, n)
    x = rng.integers(0, 256, (n, 4), dtype=np.uint8)
    return fedsim.Dataset(train=(x, y), test=(x[:20], y[:20]))


def linear(input_shape, num_classes):
    return nn.Linear(input_shape[0], num_classes)


def too_few_logits(input_shape, num_classes):
    return nn.Linear(input_shape[0], num_classes - 1)


def not_a_module(input_shape, num_classes):
    return "a model"


def nan_logits(input_shape, num_classes):
    layer = nn.Linear(input_shape[0], num_classes)
    nn.init.constant_(layer.bias, float("nan"))
    return layer


class Halving(FedAvg):
    def __init__(self, *, factor: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor


class NotAStrategy:
    pass
"""


def scenario_file(tmp_path: Path, **names: str) -> Path:
    (tmp_path / "myplugins.py").write_text(PLUGINS)
    data = names.get("data", "myplugins:blobs")
    model = names.get("model", "myplugins:linear")
    strategy = names.get("strategy", "fedavg")
    path = tmp_path / "scenario.toml"
    path.write_text(
        textwrap.dedent(
            f"""\
            name = "plugged"
            rounds = 2
            [data]
            dataset = "{data}"
            num_clients = 4
            [model]
            name = "{model}"
            [strategy]
            name = "{strategy}"
            fraction_train = 0.5
            """
        )
    )
    return path


def validate(path: Path) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["validate", str(path)])
    return code, err.getvalue()


def test_plugins_next_to_the_scenario_load_and_fit(tmp_path: Path) -> None:
    path = scenario_file(tmp_path, strategy="myplugins:Halving")
    scenario = load_scenario(path)
    assert scenario.python_path == (str(tmp_path.resolve()),)
    checked = check(scenario)
    assert len(checked.data.clients) == 4 and checked.data.num_classes == 3  # inferred from the targets
    assert checked.scenario.strategy.params == {"factor": 0.5}  # the default, recorded
    assert checked.scenario.data.params == {"n": 60, "classes": 3, "mismatched": False}
    code, err = validate(path)
    assert (
        code == 0 and "ok: plugged: 4 clients, myplugins:Halving, myplugins:linear on myplugins:blobs" in err
    )


@pytest.mark.parametrize(
    ("names", "message"),
    [
        ({"model": "nomodule_here:f"}, "model.name: 'nomodule_here:f': no module named 'nomodule_here'"),
        (
            {"model": "myplugins:linaer"},
            "model.name: 'myplugins:linaer': myplugins has no attribute 'linaer'",
        ),
        (
            {"model": "myplugins:too_few_logits"},
            "model.name: 'myplugins:too_few_logits' gave (2, 2) for 2 samples, expected (2, 3): "
            "one logit per class",
        ),
        (
            {"model": "myplugins:not_a_module"},
            "model.name: 'myplugins:not_a_module' returned str, expected a torch.nn.Module",
        ),
        (
            {"data": "myplugins:not_a_dataset"},
            "data.dataset: 'myplugins:not_a_dataset' returned dict, expected a fedsim.Dataset",
        ),
        (
            {"strategy": "myplugins:NotAStrategy"},
            "strategy.name: 'myplugins:NotAStrategy' gave NotAStrategy, expected a "
            "flwr.serverapp.strategy.Strategy (e.g. a subclass of FedAvg), or a fedsim.AsyncStrategy",
        ),
        ({"model": "cnn"}, "model.name: 'cnn': calling it failed: ValueError: 'cnn' reads images"),
        (
            {"data": "myplugins:captions"},
            "data.dataset: 'myplugins:captions': train features are an array of <U5, expected numbers",
        ),
        (
            {"model": "myplugins:nan_logits"},
            "model.name: 'myplugins:nan_logits' gave NaN or infinite logits for two training samples",
        ),
        (
            {"data": "os:system"},  # it ran os.system(<data root>)
            "data.dataset: 'os:system' is in Python's standard library: not a dataset plug-in",
        ),
    ],
)
def test_a_bad_plugin_is_one_line_exit_2(tmp_path: Path, names: dict[str, str], message: str) -> None:
    code, err = validate(scenario_file(tmp_path, **names))
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"fedsim: error: {message}"), err


def test_a_data_set_with_mismatched_lengths_is_named(tmp_path: Path) -> None:
    path = scenario_file(tmp_path)
    path.write_text(path.read_text() + "[data.params]\nmismatched = true\n")
    code, err = validate(path)
    assert code == 2 and err == (
        "fedsim: error: data.dataset: 'myplugins:blobs': train has 60 samples of features but 59 targets "
        "(expected one integer target per sample)\n"
    )


def test_debug_shows_the_plugins_own_traceback(tmp_path: Path) -> None:
    path = scenario_file(tmp_path, model="cnn")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["validate", str(path), "--debug"]) == 2
    assert err.getvalue().startswith("fedsim: error: model.name: 'cnn'") and "Traceback" in err.getvalue()


def test_uint8_images_are_scaled_to_floats_in_0_1(tmp_path: Path) -> None:
    checked = check(load_scenario(scenario_file(tmp_path, data="myplugins:pixels")))
    x = checked.data.train.x
    assert x.dtype == torch.float32 and float(x.min()) >= 0 and float(x.max()) <= 1 and float(x.max()) > 0.9
