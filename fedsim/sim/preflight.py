"""What every run checks before Ray starts, and all that ``fedsim validate`` does.

The scenario file can only say which plug-ins to use; whether they fit together shows
once they are loaded: the data set loads and splits into the clients, the model builds
on the data's shape and gives one logit per class for a batch, the local update takes
its params, and the strategy builds for the population.  Each failure is one line
naming the scenario key (fedsim/scenario/plugins.py: PluginError), the plug-in's own exception
behind it for ``--debug``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from fedsim.data import FederatedData, find_federated
from fedsim.models.build import build_model
from fedsim.scenario import plugins, signatures
from fedsim.scenario.sections import Scenario
from fedsim.scenario.tables import Params, ScenarioError
from strategies.devices import draw
from strategies.registry import check_requirements, make_strategy


@dataclass(frozen=True)
class Checked:
    """A scenario whose plug-ins fit, resolved, with its data."""

    scenario: Scenario  # plug-in params with their defaults filled in; the client count recorded
    data: FederatedData
    root: Path | None  # the data root the data came from (None: generated)
    model: nn.Module  # built from the seed on the data's shape: what the run's engine choice inspects


def check(scenario: Scenario, data_dir: str | None = None) -> Checked:
    """Load the data and every plug-in once; the scenario as the run folder should record it."""
    if scenario.results.tensorboard and importlib.util.find_spec("tensorboard") is None:
        raise ScenarioError(
            "results.tensorboard", "needs the tensorboard package: pip install 'fedsim[tensorboard]'"
        )
    paths = scenario.python_path
    data, root = find_federated(scenario.data, scenario.seed, data_dir, paths)
    scenario = resolved(scenario, len(data.clients))
    scenario.check_population(len(data.clients))
    if scenario.evaluation.clients is not None and data.local_tests is None:
        raise ScenarioError(
            "evaluation.clients",
            f"needs each client's own test data, and {scenario.data.dataset!r} under partition "
            f"{scenario.data.partition!r} has none: set data.client_test_fraction (e.g. 0.2)",
        )
    model = build_model(scenario.model, data.input_shape, data.num_classes, scenario.seed, paths)
    check_forward(scenario.model.name, model, data)
    parameters = [name for name, _ in model.named_parameters()]
    make_strategy(
        scenario, len(data.clients), parameters
    )  # built once and dropped: the server builds its own
    draw(
        scenario.devices, scenario.seed, len(data.clients)
    )  # a trace file read and checked here, not mid-run
    return Checked(scenario, data, root, model)


def resolved(scenario: Scenario, population: int) -> Scenario:
    """``scenario`` with every plug-in's params bound (defaults filled) and the client count set."""
    scenario = bound(scenario)
    data = scenario.data
    count = data.num_clients if data.partition == "natural" else population  # natural: as given
    return dataclasses.replace(scenario, data=dataclasses.replace(data, num_clients=count))


def bound(scenario: Scenario) -> Scenario:
    """``scenario`` with every plug-in's params checked against its signature, defaults filled."""
    paths = scenario.python_path
    data, model, client = scenario.data, scenario.model, scenario.client
    data_params = _bound(plugins.DATASET, data.dataset, data.params, paths)
    model_params = _bound(plugins.MODEL, model.name, model.params, paths)
    update_params = _bound(plugins.UPDATE, client.update, client.params, paths)
    strategy_params = _bound(plugins.STRATEGY, scenario.strategy.name, scenario.strategy.params, paths)
    if client.update != "sgd" and scenario.privacy is not None and scenario.privacy.mode == "sample":
        raise ScenarioError(
            "client.update", "privacy.mode 'sample' is DP-SGD inside the built-in 'sgd' update"
        )
    check_requirements(scenario)  # what the strategy's algorithm declares it needs
    return dataclasses.replace(
        scenario,
        data=dataclasses.replace(data, params=data_params),
        model=dataclasses.replace(model, params=model_params),
        client=dataclasses.replace(client, params=update_params),
        strategy=dataclasses.replace(scenario.strategy, params=strategy_params),
    )


def _bound(kind: plugins.Kind, name: str, params: Params, paths: tuple[str, ...]) -> Params:
    target = plugins.resolve(kind, name, paths)
    return Params(
        {k: v for k, v in signatures.bind(kind, name, target, params).items() if signatures.is_toml(v)}
    )


def check_forward(name: str, model: nn.Module, data: FederatedData) -> None:
    """The model maps a batch of two training samples to one logit per class for each."""
    x, _ = data.train.batch(slice(0, 2))
    model.eval()  # a batch norm in training mode refuses a batch of one sample
    try:
        with torch.no_grad():
            out = model(x)
    except Exception as error:
        hint = "" if x.is_floating_point() else "; the samples are token ids: a sequence model such as lstm"
        raise plugins.PluginError(
            "model.name",
            f"{name!r}: a forward pass on samples of shape {tuple(x.shape[1:])} failed: "
            f"{type(error).__name__}: {error}{hint}",
        ) from error
    expected = (len(x), data.num_classes)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise plugins.PluginError(
            "model.name",
            f"{name!r} gave {got} for {len(x)} samples, expected {expected}: one logit per class",
        )
    if not torch.isfinite(out).all():  # it would train on NaN and report nothing useful
        raise plugins.PluginError(
            "model.name", f"{name!r} gave NaN or infinite logits for two training samples, as built"
        )
